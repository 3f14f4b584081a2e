interface Props {
  message: string | null | undefined;
  testId?: string;
}

/** An error the inspector must read: announced to screen readers, never an empty box. */
export function ErrorText({ message, testId = 'error' }: Props) {
  if (!message) return null;
  return (
    <p className="error" role="alert" data-testid={testId}>
      {message}
    </p>
  );
}

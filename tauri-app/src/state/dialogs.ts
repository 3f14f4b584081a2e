// Which modal dialogs are open, app-wide. A screen that owns the keyboard (the scan field, which a
// wedge scanner types into) takes focus back as soon as the last dialog closes, whichever
// component opened it.
import { useEffect, useSyncExternalStore } from 'react';

let open = 0;
const listeners = new Set<() => void>();

function notify(): void {
  for (const listener of listeners) listener();
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Count this component as an open modal dialog while `active`. */
export function useModal(active = true): void {
  useEffect(() => {
    if (!active) return;
    open += 1;
    notify();
    return () => {
      open -= 1;
      notify();
    };
  }, [active]);
}

/** Whether any modal dialog is open now. */
export function useAnyModal(): boolean {
  return useSyncExternalStore(
    subscribe,
    () => open > 0,
    () => false,
  );
}

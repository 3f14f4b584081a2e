// One item: what it is and how it is judged, its photo, the AI's judgment, the person's verdict.
// Each part is its own component (screens/item/); the AI job is followed by `useAnalysis`, and
// the item's state reloads with the session when the event stream says it changed.
import type { Overlay } from '../components/PhotoView';
import { latest, type Session, type SessionItem } from '../lib/inspection';
import { useAnalysis } from '../state/useAnalysis';
import { AiCard } from './item/AiCard';
import { ItemHeader } from './item/ItemHeader';
import { PhotoCard } from './item/PhotoCard';
import { VerdictCard } from './item/VerdictCard';

interface Props {
  session: Session;
  item: SessionItem;
  closed: boolean;
  onChanged: (session: Session) => void;
  refresh: () => Promise<Session | null>;
}

export function ItemPanel({ session, item, closed, onChanged, refresh }: Props) {
  const ai = latest(item.ai_results);
  const image = latest(item.images);
  const analysis = useAnalysis(session.id, item.item_id, image?.id ?? null);
  // A photo attached to an item whose master says so starts its AI at once: no tap per photo.
  const attached = () => {
    if (item.auto_analyse && !closed) void analysis.analyse();
  };
  // The overlay belongs to the photo the AI judged, not to a newer one.
  const overlay = ai && image && (!ai.image_id || ai.image_id === image.id) ? ((ai.detailed_results ?? null) as Overlay | null) : null;

  return (
    <article className="item" data-testid="item-panel" data-code={item.item_code} data-status={item.status}>
      <ItemHeader item={item} />
      <div className="item__grid">
        <PhotoCard session={session} item={item} image={image} overlay={overlay} closed={closed} refresh={refresh} onAttached={attached} />
        {item.ai_enabled ? <AiCard item={item} ai={ai} hasPhoto={image !== null} analysis={analysis} closed={closed} /> : null}
        <VerdictCard session={session} item={item} ai={ai} closed={closed} onChanged={onChanged} refresh={refresh} />
      </div>
    </article>
  );
}

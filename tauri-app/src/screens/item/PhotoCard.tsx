// The item's photo (with the AI's overlay when it judged this photo), and taking a new one from
// the camera or a file.
import { useState, type ChangeEvent } from 'react';
import { checkPhotoSize, photoForm, type Schemas } from '../../api/client';
import { CameraView } from '../../components/CameraView';
import { ErrorText } from '../../components/ErrorText';
import { PhotoView, type Overlay } from '../../components/PhotoView';
import { ProgressBar } from '../../components/ProgressBar';
import { useI18n } from '../../i18n';
import type { Session, SessionItem } from '../../lib/inspection';
import { useApi } from '../../state/app';
import { localName } from '../../lib/words';

interface Props {
  session: Session;
  item: SessionItem;
  image: Schemas['ImagePublic'] | null;
  overlay: Overlay | null;
  closed: boolean;
  refresh: () => Promise<Session | null>;
  /** A photo was stored for the item. */
  onAttached: () => void;
}

// Whether the inspector keeps the camera open: once opened it opens again on each item that still
// needs its photo, until closed (a tap per item saved, with gloves on).
const CAMERA_KEY = 'kensa.camera';
function cameraKept(): boolean {
  try {
    return localStorage.getItem(CAMERA_KEY) === 'open';
  } catch {
    return false;
  }
}
function keepCamera(open: boolean): void {
  try {
    if (open) localStorage.setItem(CAMERA_KEY, 'open');
    else localStorage.removeItem(CAMERA_KEY);
  } catch {
    // Storage refused (private mode): the camera is simply not kept.
  }
}

export function PhotoCard({ session, item, image, overlay, closed, refresh, onAttached }: Props) {
  const { t, err, lang } = useI18n();
  const api = useApi();
  const [uploading, setUploading] = useState(false);
  const [camera, setCamera] = useState(() => !closed && image === null && cameraKept());
  const openCamera = (open: boolean) => {
    keepCamera(open);
    setCamera(open);
  };
  const [photoError, setPhotoError] = useState<unknown>(null);

  const upload = async (photo: Blob) => {
    setPhotoError(null);
    try {
      checkPhotoSize(photo);
      setUploading(true);
      await api.post('/sessions/{session_id}/items/{item_id}/images', {
        path: { session_id: session.id, item_id: item.item_id },
        body: photoForm(photo),
      });
      await refresh();
      onAttached();
    } catch (caught) {
      setPhotoError(caught);
    } finally {
      setUploading(false);
    }
  };

  const fromFile = (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    e.target.value = '';
    if (file) void upload(file);
  };

  return (
    <section className="card item__photo">
      <h3>{t('item.photo')}</h3>
      {/* One fixed slot for the camera, the photo or its absence, and one for the upload's
          progress: nothing below moves when either comes or goes. */}
      <div className="photo-slot">
        {camera ? (
          <CameraView
            mode="capture"
            onCapture={(photo) => {
              // The camera stays kept for the next item; this one now shows its photo.
              setCamera(false);
              void upload(photo);
            }}
            onClose={() => openCamera(false)}
          />
        ) : image ? (
          <PhotoView imageId={image.id} alt={t('item.photoAlt', { item: localName(lang, item.item_name, item.item_name_en) })} overlay={overlay} overlayLabel={t('item.overlay')} />
        ) : (
          <p className="photo__none">{t('item.noPhoto')}</p>
        )}
      </div>
      <div className="progress-slot">
        {uploading ? <ProgressBar value={null} label={t('progress.uploading')} small testId="upload-progress" /> : null}
      </div>
      <ErrorText message={photoError ? err(photoError) : null} testId="photo-error" />
      {!closed ? (
        // Kept in place while the camera's own buttons show, so the card keeps its height.
        <div className={`actions${camera ? ' is-hidden' : ''}`} aria-hidden={camera || undefined}>
          <button type="button" className="btn" onClick={() => openCamera(true)} disabled={uploading} data-testid="take-photo">
            {t('item.takePhoto')}
          </button>
          <label className={`btn file-btn${uploading ? ' is-disabled' : ''}`}>
            {t('item.uploadPhoto')}
            <input type="file" accept="image/*" className="visually-hidden" disabled={uploading} onChange={fromFile} data-testid="photo-file" />
          </label>
        </div>
      ) : null}
    </section>
  );
}

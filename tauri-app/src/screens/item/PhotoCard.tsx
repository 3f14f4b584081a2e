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

interface Props {
  session: Session;
  item: SessionItem;
  image: Schemas['ImagePublic'] | null;
  overlay: Overlay | null;
  closed: boolean;
  refresh: () => Promise<Session | null>;
}

export function PhotoCard({ session, item, image, overlay, closed, refresh }: Props) {
  const { t, err } = useI18n();
  const api = useApi();
  const [uploading, setUploading] = useState(false);
  const [camera, setCamera] = useState(false);
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
      {image ? (
        <PhotoView imageId={image.id} alt={t('item.photoAlt', { item: item.item_name })} overlay={overlay} overlayLabel={t('item.overlay')} />
      ) : (
        <p className="photo__none">{t('item.noPhoto')}</p>
      )}
      {uploading ? <ProgressBar value={null} label={t('progress.uploading')} small testId="upload-progress" /> : null}
      <ErrorText message={photoError ? err(photoError) : null} testId="photo-error" />
      {!closed ? (
        <div className="actions">
          <button type="button" className="btn" onClick={() => setCamera((c) => !c)} disabled={uploading}>
            {t('item.takePhoto')}
          </button>
          <label className={`btn file-btn${uploading ? ' is-disabled' : ''}`}>
            {t('item.uploadPhoto')}
            <input type="file" accept="image/*" className="visually-hidden" disabled={uploading} onChange={fromFile} data-testid="photo-file" />
          </label>
        </div>
      ) : null}
      {camera ? (
        <CameraView
          mode="capture"
          onCapture={(photo) => {
            setCamera(false);
            void upload(photo);
          }}
          onClose={() => setCamera(false)}
        />
      ) : null}
    </section>
  );
}

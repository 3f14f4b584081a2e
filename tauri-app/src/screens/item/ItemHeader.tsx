// The item's name, kind, whether it is required, its state, and how it is judged (in words the
// sidecar chose from the same criteria it judges by).
import { useI18n } from '../../i18n';
import { criteriaLine, itemStateLabel, label, type SessionItem } from '../../lib/inspection';
import { localName } from '../../lib/words';

export function ItemHeader({ item }: { item: SessionItem }) {
  const { t, lang } = useI18n();
  return (
    <header className="item__head">
      <h2>
        {item.order_sequence}. {localName(lang, item.item_name, item.item_name_en)} <span className="muted">{item.item_code}</span>
      </h2>
      <div className="step__tags">
        <span className="tag">{label(t, 'itype', item.inspection_type)}</span>
        <span className={`tag${item.required ? ' tag--strong' : ''}`}>{item.required ? t('item.required') : t('item.optional')}</span>
        <span className={`chip chip--${item.status}`} data-testid="item-status">
          {itemStateLabel(t, item.status)}
        </span>
      </div>
      <p className="muted small" data-testid="item-criteria">
        {t('item.criteria')}: {criteriaLine(item, lang)}
      </p>
    </header>
  );
}

-- kensa server database (PostgreSQL): generated from schema/server.py by
-- `kensa db snapshot`; edit the models and a migration, never this file.

CREATE TABLE change_log (
	seq BIGSERIAL NOT NULL, 
	entity_type VARCHAR(50) NOT NULL, 
	entity_id VARCHAR(64) NOT NULL, 
	operation VARCHAR(10) NOT NULL, 
	changed_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (seq), 
	CONSTRAINT ck_change_log_operation CHECK (operation IN ('UPSERT', 'DELETE'))
);

CREATE INDEX idx_change_log_entity ON change_log (entity_type, entity_id);

CREATE TABLE components (
	id UUID NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	description VARCHAR, 
	docker_image VARCHAR(500) NOT NULL, 
	version VARCHAR(50) NOT NULL, 
	input_schema JSONB, 
	output_schema JSONB, 
	resource_requirements JSONB, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_components_name_version UNIQUE (name, version)
);

CREATE TABLE devices (
	id UUID NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	device_type VARCHAR(50) DEFAULT 'tablet' NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	app_version VARCHAR(50), 
	last_applied_seq BIGINT DEFAULT '0' NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	last_seen_at TIMESTAMP WITH TIME ZONE, 
	revoked_at TIMESTAMP WITH TIME ZONE, 
	token_generation INTEGER DEFAULT '0' NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_devices_type CHECK (device_type IN ('mobile', 'desktop', 'tablet')), 
	CONSTRAINT ck_devices_last_applied_seq CHECK (last_applied_seq >= 0), 
	UNIQUE (name), 
	UNIQUE (token_hash)
);

CREATE TABLE server_config (
	key VARCHAR(100) NOT NULL, 
	value VARCHAR NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (key)
);

CREATE TABLE tauri_sync_queue (
	id SERIAL NOT NULL, 
	device_id VARCHAR(255) NOT NULL, 
	device_type VARCHAR(50) NOT NULL, 
	app_version VARCHAR(50) NOT NULL, 
	entity_type VARCHAR(100) NOT NULL, 
	entity_id UUID NOT NULL, 
	operation VARCHAR(20) NOT NULL, 
	data JSONB NOT NULL, 
	priority INTEGER DEFAULT '0' NOT NULL, 
	retry_count INTEGER DEFAULT '0' NOT NULL, 
	last_retry_at TIMESTAMP WITH TIME ZONE, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	processed_at TIMESTAMP WITH TIME ZONE, 
	op_id UUID NOT NULL, 
	seq BIGINT NOT NULL, 
	device_created_at TIMESTAMP WITH TIME ZONE, 
	last_error VARCHAR, 
	apply_attempts INTEGER DEFAULT '0' NOT NULL, 
	next_attempt_at TIMESTAMP WITH TIME ZONE, 
	refusal VARCHAR(20), 
	refusal_seq BIGINT, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_sync_queue_operation CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')), 
	CONSTRAINT ck_sync_queue_device_type CHECK (device_type IN ('mobile', 'desktop', 'tablet')), 
	CONSTRAINT ck_sync_queue_retry_count CHECK (retry_count >= 0), 
	CONSTRAINT ck_sync_queue_seq CHECK (seq > 0), 
	CONSTRAINT ck_sync_queue_apply_attempts CHECK (apply_attempts >= 0), 
	CONSTRAINT ck_sync_queue_refusal CHECK (refusal IN ('conflict', 'rejected', 'dead_letter')), 
	CONSTRAINT uq_sync_queue_device_seq UNIQUE (device_id, seq), 
	UNIQUE (op_id)
);

CREATE INDEX idx_tauri_sync_queue_device_due ON tauri_sync_queue (device_id, priority DESC, created_at, id) WHERE processed_at IS NULL;

CREATE INDEX idx_tauri_sync_queue_device_pending ON tauri_sync_queue (device_id, seq) WHERE processed_at IS NULL;

CREATE INDEX idx_tauri_sync_queue_device_priority ON tauri_sync_queue (device_id, device_type, priority, created_at);

CREATE INDEX idx_tauri_sync_queue_unprocessed ON tauri_sync_queue (processed_at) WHERE processed_at IS NULL;

CREATE UNIQUE INDEX uq_sync_queue_device_refusal ON tauri_sync_queue (device_id, refusal_seq);

CREATE TABLE users (
	id UUID NOT NULL, 
	username VARCHAR(150) NOT NULL, 
	email VARCHAR(255), 
	password_hash VARCHAR NOT NULL, 
	full_name VARCHAR(255), 
	role VARCHAR(20) DEFAULT 'inspector' NOT NULL, 
	is_active BOOLEAN DEFAULT true NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	version INTEGER DEFAULT '1' NOT NULL, 
	created_by UUID, 
	updated_by UUID, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_users_role CHECK (role IN ('inspector', 'supervisor', 'admin')), 
	UNIQUE (username), 
	UNIQUE (email), 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(updated_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE audit_chains (
	chain VARCHAR(64) NOT NULL, 
	device_id UUID, 
	last_seq BIGINT DEFAULT '0' NOT NULL, 
	last_hash VARCHAR(64) NOT NULL, 
	status VARCHAR(10) DEFAULT 'ok' NOT NULL, 
	broken_seq BIGINT, 
	broken_reason VARCHAR, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (chain), 
	CONSTRAINT ck_audit_chains_status CHECK (status IN ('ok', 'broken')), 
	CONSTRAINT ck_audit_chains_last_seq CHECK (last_seq >= 0), 
	FOREIGN KEY(device_id) REFERENCES devices (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE audit_log (
	id BIGSERIAL NOT NULL, 
	chain VARCHAR(64) NOT NULL, 
	device_id UUID, 
	seq BIGINT NOT NULL, 
	entry_id VARCHAR(64), 
	at VARCHAR(40), 
	username VARCHAR(150), 
	entity VARCHAR(100), 
	entity_id VARCHAR(64), 
	action VARCHAR(50), 
	row_digest VARCHAR(64), 
	prev_hash VARCHAR(64) NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	canonical BYTEA NOT NULL, 
	received_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_audit_log_chain_seq UNIQUE (chain, seq), 
	CONSTRAINT ck_audit_log_seq CHECK (seq > 0), 
	FOREIGN KEY(device_id) REFERENCES devices (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_audit_log_entity ON audit_log (entity, entity_id);

CREATE TABLE files (
	id UUID NOT NULL, 
	original_name VARCHAR(500), 
	mime_type VARCHAR(100), 
	file_size BIGINT, 
	storage_path VARCHAR(1000) NOT NULL, 
	checksum VARCHAR(64), 
	metadata JSONB, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	created_by UUID, 
	kind VARCHAR(20) DEFAULT 'image' NOT NULL, 
	device_id UUID, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_files_size CHECK (file_size IS NULL OR file_size >= 0), 
	CONSTRAINT ck_files_kind CHECK (kind IN ('image', 'model', 'other')), 
	UNIQUE (checksum), 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(device_id) REFERENCES devices (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_files_created_user ON files (created_by, created_at);

CREATE INDEX idx_files_storage_path ON files (storage_path);

CREATE TABLE inspection_targets_master (
	id UUID NOT NULL, 
	product_code VARCHAR(100) NOT NULL, 
	product_name VARCHAR(255) NOT NULL, 
	product_name_en VARCHAR(255), 
	version VARCHAR(50) NOT NULL, 
	description VARCHAR, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	created_by UUID, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	updated_by UUID, 
	PRIMARY KEY (id), 
	UNIQUE (product_code), 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(updated_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_inspection_targets_product_code ON inspection_targets_master (product_code);

CREATE TABLE pipelines (
	id UUID NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	description VARCHAR, 
	definition JSONB NOT NULL, 
	version INTEGER DEFAULT '1' NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	created_by UUID, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	updated_by UUID, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_pipelines_version CHECK (version > 0), 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(updated_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_pipelines_name ON pipelines (name);

CREATE TABLE inspection_items_master (
	id UUID NOT NULL, 
	target_id UUID NOT NULL, 
	item_code VARCHAR(100) NOT NULL, 
	item_name VARCHAR(255) NOT NULL, 
	item_name_en VARCHAR(255), 
	inspection_type VARCHAR(50) NOT NULL, 
	ai_enabled BOOLEAN DEFAULT false NOT NULL, 
	pipeline_id UUID, 
	criteria JSONB NOT NULL, 
	order_sequence INTEGER NOT NULL, 
	required BOOLEAN DEFAULT true NOT NULL, 
	auto_analyse BOOLEAN DEFAULT true NOT NULL, 
	defect_types JSONB, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	created_by UUID, 
	updated_by UUID, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_items_target_item_code UNIQUE (target_id, item_code), 
	CONSTRAINT ck_items_order_sequence CHECK (order_sequence > 0), 
	CONSTRAINT ck_items_inspection_type CHECK (inspection_type IN ('VISUAL', 'DIMENSION', 'FUNCTION', 'TEXT')), 
	FOREIGN KEY(target_id) REFERENCES inspection_targets_master (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(pipeline_id) REFERENCES pipelines (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(updated_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_inspection_items_pipeline ON inspection_items_master (pipeline_id);

CREATE INDEX idx_inspection_items_target_sequence ON inspection_items_master (target_id, order_sequence);

CREATE TABLE inspection_targets (
	id UUID NOT NULL, 
	device_id UUID NOT NULL, 
	product_id VARCHAR(100) NOT NULL, 
	batch_id VARCHAR(255) NOT NULL, 
	qr_code VARCHAR NOT NULL, 
	serial VARCHAR(255), 
	master_id UUID, 
	master_version VARCHAR(50), 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	received_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	created_by UUID, 
	updated_by UUID, 
	PRIMARY KEY (id), 
	FOREIGN KEY(device_id) REFERENCES devices (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(master_id) REFERENCES inspection_targets_master (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(updated_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX ix_inspection_targets_device_id ON inspection_targets (device_id);

CREATE TABLE pipeline_executions (
	id UUID NOT NULL, 
	pipeline_id UUID, 
	status VARCHAR(50) NOT NULL, 
	input_data JSONB, 
	output_data JSONB, 
	error_message VARCHAR, 
	started_at TIMESTAMP WITH TIME ZONE, 
	completed_at TIMESTAMP WITH TIME ZONE, 
	created_by UUID, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	device_id UUID, 
	pipeline_version INTEGER, 
	ai_result_id UUID, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_pipeline_exec_status CHECK (status IN ('pending', 'running', 'completed', 'failed')), 
	FOREIGN KEY(pipeline_id) REFERENCES pipelines (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(device_id) REFERENCES devices (id) DEFERRABLE INITIALLY DEFERRED, 
	UNIQUE (ai_result_id)
);

CREATE INDEX idx_pipeline_executions_status_created ON pipeline_executions (status, created_at);

CREATE TABLE component_executions (
	id UUID NOT NULL, 
	execution_id UUID NOT NULL, 
	component_id UUID, 
	status VARCHAR(50) NOT NULL, 
	input_data JSONB, 
	output_data JSONB, 
	execution_time_ms INTEGER, 
	resource_usage JSONB, 
	started_at TIMESTAMP WITH TIME ZONE, 
	completed_at TIMESTAMP WITH TIME ZONE, 
	step_name VARCHAR(255), 
	PRIMARY KEY (id), 
	CONSTRAINT ck_component_exec_time CHECK (execution_time_ms IS NULL OR execution_time_ms >= 0), 
	FOREIGN KEY(execution_id) REFERENCES pipeline_executions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(component_id) REFERENCES components (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_component_executions_execution_time ON component_executions (execution_id, started_at);

CREATE TABLE inspection_sessions (
	id UUID NOT NULL, 
	device_id UUID NOT NULL, 
	target_id UUID NOT NULL, 
	user_id UUID, 
	username VARCHAR(150), 
	product_code VARCHAR(100), 
	status VARCHAR(50) NOT NULL, 
	result VARCHAR(20), 
	started_at TIMESTAMP WITH TIME ZONE, 
	completed_at TIMESTAMP WITH TIME ZONE, 
	version INTEGER DEFAULT '1' NOT NULL, 
	received_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	created_by UUID, 
	updated_by UUID, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_sessions_status CHECK (status IN ('scanning', 'identified', 'in_progress', 'ai_completed', 'human_review', 'completed', 'failed', 'cancelled', 'product_not_found', 'qr_decode_failed')), 
	FOREIGN KEY(device_id) REFERENCES devices (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(target_id) REFERENCES inspection_targets (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(user_id) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(updated_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_inspection_sessions_device_started ON inspection_sessions (device_id, started_at);

CREATE INDEX idx_inspection_sessions_status_completed ON inspection_sessions (status, completed_at);

CREATE TABLE inspection_images (
	id UUID NOT NULL, 
	session_id UUID NOT NULL, 
	item_id UUID, 
	sha256 VARCHAR(64) NOT NULL, 
	image_type VARCHAR(50) NOT NULL, 
	file_size BIGINT, 
	mime_type VARCHAR(100), 
	width INTEGER, 
	height INTEGER, 
	created_at TIMESTAMP WITH TIME ZONE, 
	received_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	created_by UUID, 
	updated_by UUID, 
	PRIMARY KEY (id), 
	FOREIGN KEY(session_id) REFERENCES inspection_sessions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(item_id) REFERENCES inspection_items_master (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(updated_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX ix_inspection_images_session_id ON inspection_images (session_id);

CREATE INDEX ix_inspection_images_sha256 ON inspection_images (sha256);

CREATE TABLE inspection_session_items (
	id UUID NOT NULL, 
	session_id UUID NOT NULL, 
	item_id UUID, 
	item_code VARCHAR(100) NOT NULL, 
	order_sequence INTEGER NOT NULL, 
	required BOOLEAN NOT NULL, 
	status VARCHAR(50) NOT NULL, 
	result VARCHAR(20), 
	attempts INTEGER NOT NULL, 
	version INTEGER DEFAULT '1' NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	created_by UUID, 
	updated_by UUID, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_session_items_status CHECK (status IN ('pending', 'captured', 'ai_running', 'ai_completed', 'verified', 'skipped', 'failed')), 
	FOREIGN KEY(session_id) REFERENCES inspection_sessions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(item_id) REFERENCES inspection_items_master (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(updated_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX ix_inspection_session_items_session_id ON inspection_session_items (session_id);

CREATE TABLE signatures (
	id UUID NOT NULL, 
	session_id UUID NOT NULL, 
	user_id UUID, 
	username VARCHAR(150), 
	full_name VARCHAR(255), 
	role VARCHAR(50) NOT NULL, 
	meaning VARCHAR(20) NOT NULL, 
	record_type VARCHAR(50) NOT NULL, 
	record_id UUID NOT NULL, 
	record_digest VARCHAR(64) NOT NULL, 
	signed_at TIMESTAMP WITH TIME ZONE, 
	received_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_signatures_meaning CHECK (meaning IN ('approved', 'overridden', 'released', 'discarded')), 
	CONSTRAINT ck_signatures_record_type CHECK (record_type IN ('human_verification_result', 'inspection_session')), 
	FOREIGN KEY(session_id) REFERENCES inspection_sessions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(user_id) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX ix_signatures_session_id ON signatures (session_id);

CREATE TABLE ai_inspection_results (
	id UUID NOT NULL, 
	supersedes UUID, 
	created_by UUID, 
	updated_by UUID, 
	session_id UUID NOT NULL, 
	item_id UUID, 
	image_id UUID, 
	pipeline_id UUID, 
	pipeline_version VARCHAR(50), 
	model_sha256 VARCHAR(64), 
	overall_result VARCHAR(20) NOT NULL, 
	confidence FLOAT, 
	processing_time FLOAT NOT NULL, 
	detailed_results JSONB, 
	measurements JSONB, 
	timings JSONB, 
	created_at TIMESTAMP WITH TIME ZONE, 
	received_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	model_hashes JSONB, 
	image_sha256 VARCHAR(64), 
	engine_version VARCHAR(100), 
	execution_provider VARCHAR(100), 
	step_timings JSONB, 
	models_known BOOLEAN, 
	unknown_models JSONB, 
	PRIMARY KEY (id), 
	UNIQUE (supersedes), 
	FOREIGN KEY(supersedes) REFERENCES ai_inspection_results (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(updated_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(session_id) REFERENCES inspection_sessions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(item_id) REFERENCES inspection_items_master (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(image_id) REFERENCES inspection_images (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(pipeline_id) REFERENCES pipelines (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_ai_results_confidence_time ON ai_inspection_results (confidence, created_at);

CREATE INDEX ix_ai_inspection_results_session_id ON ai_inspection_results (session_id);

CREATE TABLE human_verification_results (
	id UUID NOT NULL, 
	supersedes UUID, 
	created_by UUID, 
	updated_by UUID, 
	session_id UUID NOT NULL, 
	item_id UUID, 
	ai_result_id UUID, 
	user_id UUID, 
	username VARCHAR(150), 
	final_result VARCHAR(20) NOT NULL, 
	notes VARCHAR, 
	defect_types JSONB, 
	severity VARCHAR(20), 
	overrode_ai BOOLEAN NOT NULL, 
	verification_time FLOAT NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE, 
	received_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (supersedes), 
	FOREIGN KEY(supersedes) REFERENCES human_verification_results (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(created_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(updated_by) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(session_id) REFERENCES inspection_sessions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(item_id) REFERENCES inspection_items_master (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(ai_result_id) REFERENCES ai_inspection_results (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(user_id) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_human_results_final_date ON human_verification_results (final_result, created_at);

CREATE INDEX ix_human_verification_results_session_id ON human_verification_results (session_id);

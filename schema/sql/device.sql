-- kensa device database (SQLite): generated from schema/device.py by
-- `kensa db snapshot`; edit the models and a migration, never this file.

CREATE TABLE audit_log (
	seq INTEGER NOT NULL, 
	id VARCHAR NOT NULL, 
	at VARCHAR NOT NULL, 
	user_id INTEGER, 
	user_server_id VARCHAR, 
	username VARCHAR, 
	role VARCHAR, 
	entity VARCHAR NOT NULL, 
	entity_id VARCHAR, 
	action VARCHAR NOT NULL, 
	changes JSON, 
	reason VARCHAR, 
	detail JSON, 
	row_digest VARCHAR, 
	prev_hash VARCHAR NOT NULL, 
	hash VARCHAR NOT NULL, 
	PRIMARY KEY (seq), 
	CONSTRAINT ck_audit_log_seq CHECK (seq > 0), 
	CONSTRAINT ck_audit_log_hash CHECK (length(hash) = 64 AND length(prev_hash) = 64), 
	UNIQUE (id)
);

CREATE INDEX idx_audit_log_entity ON audit_log (entity, entity_id, seq);

CREATE TABLE calibrations (
	id VARCHAR NOT NULL, 
	camera_id VARCHAR NOT NULL, 
	mm_per_px FLOAT NOT NULL, 
	notes VARCHAR, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_calibrations_scale CHECK (mm_per_px > 0)
);

CREATE INDEX ix_calibrations_camera_id ON calibrations (camera_id);

CREATE TABLE inspection_sync (
	session_id VARCHAR NOT NULL, 
	received_through_seq INTEGER NOT NULL, 
	PRIMARY KEY (session_id)
);

CREATE TABLE inspection_targets_master (
	id VARCHAR NOT NULL, 
	product_code VARCHAR NOT NULL, 
	product_name VARCHAR NOT NULL, 
	product_name_en VARCHAR, 
	version VARCHAR NOT NULL, 
	description VARCHAR, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	deleted_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (product_code)
);

CREATE TABLE model_files (
	sha256 VARCHAR NOT NULL, 
	name VARCHAR NOT NULL, 
	size INTEGER NOT NULL, 
	file_path VARCHAR NOT NULL, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (sha256), 
	CONSTRAINT ck_model_files_sha256 CHECK (length(sha256) = 64), 
	CONSTRAINT ck_model_files_size CHECK (size > 0)
);

CREATE TABLE outbox (
	seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	op_id VARCHAR NOT NULL, 
	entity_type VARCHAR NOT NULL, 
	entity_id VARCHAR NOT NULL, 
	operation VARCHAR NOT NULL, 
	data JSON NOT NULL, 
	priority INTEGER DEFAULT '0' NOT NULL, 
	retry_count INTEGER DEFAULT '0' NOT NULL, 
	last_retry_at DATETIME, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	set_aside_at DATETIME, 
	set_aside_reason VARCHAR, 
	CONSTRAINT ck_outbox_operation CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')), 
	CONSTRAINT ck_outbox_retry_count CHECK (retry_count >= 0), 
	UNIQUE (op_id)
);

CREATE INDEX idx_outbox_push_order ON outbox (priority, seq);

CREATE TABLE pipelines (
	id VARCHAR NOT NULL, 
	name VARCHAR NOT NULL, 
	description VARCHAR, 
	definition JSON NOT NULL, 
	version INTEGER DEFAULT '1' NOT NULL, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	deleted_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_pipelines_version CHECK (version > 0)
);

CREATE TABLE sync_refusals (
	op_id VARCHAR NOT NULL, 
	seq INTEGER NOT NULL, 
	entity_type VARCHAR NOT NULL, 
	entity_id VARCHAR NOT NULL, 
	operation VARCHAR NOT NULL, 
	kind VARCHAR NOT NULL, 
	reason_code VARCHAR NOT NULL, 
	reason VARCHAR NOT NULL, 
	data JSON NOT NULL, 
	server_data JSON, 
	refused_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	resolved_at DATETIME, 
	resolution VARCHAR, 
	resolved_by VARCHAR, 
	PRIMARY KEY (op_id), 
	CONSTRAINT ck_sync_refusals_kind CHECK (kind IN ('conflict', 'rejected', 'dead_letter')), 
	CONSTRAINT ck_sync_refusals_resolution CHECK (resolution IS NULL OR resolution IN ('keep_tablet', 'keep_server'))
);

CREATE INDEX ix_sync_refusals_entity_id ON sync_refusals (entity_id);

CREATE TABLE sync_state (
	name VARCHAR NOT NULL, 
	cursor VARCHAR, 
	last_success_at DATETIME, 
	last_error_at DATETIME, 
	last_error VARCHAR, 
	last_error_kind VARCHAR, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (name)
);

CREATE TABLE system_config (
	"key" VARCHAR NOT NULL, 
	value VARCHAR NOT NULL, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY ("key")
);

CREATE TABLE users (
	id INTEGER NOT NULL, 
	username VARCHAR NOT NULL, 
	email VARCHAR, 
	password_hash VARCHAR NOT NULL, 
	full_name VARCHAR, 
	role VARCHAR DEFAULT 'inspector' NOT NULL, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	server_id VARCHAR, 
	origin VARCHAR, 
	is_active BOOLEAN DEFAULT 1 NOT NULL, 
	failed_attempts INTEGER DEFAULT '0' NOT NULL, 
	locked_until DATETIME, 
	last_login_at DATETIME, 
	version INTEGER DEFAULT '1' NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_users_role CHECK (role IN ('inspector', 'supervisor', 'admin')), 
	CONSTRAINT ck_users_failed_attempts CHECK (failed_attempts >= 0), 
	UNIQUE (username), 
	UNIQUE (email), 
	UNIQUE (server_id)
);

CREATE TABLE inspection_items_master (
	id VARCHAR NOT NULL, 
	target_id VARCHAR NOT NULL, 
	item_code VARCHAR NOT NULL, 
	item_name VARCHAR NOT NULL, 
	item_name_en VARCHAR, 
	inspection_type VARCHAR NOT NULL, 
	ai_enabled BOOLEAN DEFAULT 0 NOT NULL, 
	pipeline_id VARCHAR, 
	criteria JSON NOT NULL, 
	order_sequence INTEGER NOT NULL, 
	required BOOLEAN DEFAULT 1 NOT NULL, 
	auto_analyse BOOLEAN DEFAULT 1 NOT NULL, 
	defect_types JSON, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	deleted_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_items_target_item_code UNIQUE (target_id, item_code), 
	CONSTRAINT ck_items_order_sequence CHECK (order_sequence > 0), 
	CONSTRAINT ck_items_inspection_type CHECK (inspection_type IN ('VISUAL', 'DIMENSION', 'FUNCTION', 'TEXT')), 
	FOREIGN KEY(target_id) REFERENCES inspection_targets_master (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(pipeline_id) REFERENCES pipelines (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_inspection_items_target_sequence ON inspection_items_master (target_id, order_sequence);

CREATE TABLE inspection_targets (
	id VARCHAR NOT NULL, 
	product_id VARCHAR NOT NULL, 
	batch_id VARCHAR NOT NULL, 
	qr_code VARCHAR NOT NULL, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	master_id VARCHAR, 
	master_version VARCHAR, 
	serial VARCHAR, 
	payload_format VARCHAR, 
	version INTEGER DEFAULT '1' NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(master_id) REFERENCES inspection_targets_master (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE login_sources (
	user_id INTEGER NOT NULL, 
	source VARCHAR(64) NOT NULL, 
	failed_attempts INTEGER DEFAULT '0' NOT NULL, 
	locked_until DATETIME, 
	last_failed_at DATETIME, 
	last_success_at DATETIME, 
	PRIMARY KEY (user_id, source), 
	CONSTRAINT ck_login_sources_failed_attempts CHECK (failed_attempts >= 0), 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE inspection_sessions (
	id VARCHAR NOT NULL, 
	target_id VARCHAR NOT NULL, 
	user_id INTEGER, 
	status VARCHAR DEFAULT 'scanning' NOT NULL, 
	started_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	completed_at DATETIME, 
	result VARCHAR, 
	product_code VARCHAR, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	version INTEGER DEFAULT '1' NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_sessions_status CHECK (status IN ('scanning', 'identified', 'in_progress', 'ai_completed', 'human_review', 'completed', 'failed', 'cancelled', 'product_not_found', 'qr_decode_failed')), 
	CONSTRAINT ck_sessions_result CHECK (result IS NULL OR result IN ('OK', 'NG', 'PENDING')), 
	FOREIGN KEY(target_id) REFERENCES inspection_targets (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(user_id) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_inspection_sessions_started ON inspection_sessions (started_at);

CREATE INDEX idx_inspection_sessions_status_completed ON inspection_sessions (status, completed_at);

CREATE INDEX idx_inspection_sessions_user_started ON inspection_sessions (user_id, started_at);

CREATE INDEX ix_inspection_sessions_product_code ON inspection_sessions (product_code);

CREATE TABLE inspection_images (
	id VARCHAR NOT NULL, 
	session_id VARCHAR NOT NULL, 
	file_path VARCHAR NOT NULL, 
	image_type VARCHAR DEFAULT 'capture' NOT NULL, 
	file_size INTEGER, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	item_id VARCHAR, 
	sha256 VARCHAR NOT NULL, 
	mime_type VARCHAR, 
	width INTEGER, 
	height INTEGER, 
	thumbnail_path VARCHAR, 
	uploaded_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_images_file_size CHECK (file_size IS NULL OR file_size > 0), 
	CONSTRAINT ck_images_sha256 CHECK (length(sha256) = 64), 
	FOREIGN KEY(session_id) REFERENCES inspection_sessions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(item_id) REFERENCES inspection_items_master (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX ix_inspection_images_session_id ON inspection_images (session_id);

CREATE INDEX ix_inspection_images_sha256 ON inspection_images (sha256);

CREATE TABLE inspection_session_items (
	id VARCHAR NOT NULL, 
	session_id VARCHAR NOT NULL, 
	item_id VARCHAR NOT NULL, 
	item_code VARCHAR NOT NULL, 
	order_sequence INTEGER NOT NULL, 
	required BOOLEAN NOT NULL, 
	status VARCHAR DEFAULT 'pending' NOT NULL, 
	result VARCHAR, 
	attempts INTEGER DEFAULT '0' NOT NULL, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	version INTEGER DEFAULT '1' NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_session_items_session_item UNIQUE (session_id, item_id), 
	CONSTRAINT ck_session_items_status CHECK (status IN ('pending', 'captured', 'ai_running', 'ai_completed', 'verified', 'skipped', 'failed')), 
	CONSTRAINT ck_session_items_result CHECK (result IS NULL OR result IN ('OK', 'NG', 'PENDING')), 
	CONSTRAINT ck_session_items_order_sequence CHECK (order_sequence > 0), 
	CONSTRAINT ck_session_items_attempts CHECK (attempts >= 0), 
	FOREIGN KEY(session_id) REFERENCES inspection_sessions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(item_id) REFERENCES inspection_items_master (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX ix_inspection_session_items_session_id ON inspection_session_items (session_id);

CREATE TABLE signatures (
	id VARCHAR NOT NULL, 
	session_id VARCHAR NOT NULL, 
	user_id INTEGER NOT NULL, 
	username VARCHAR NOT NULL, 
	full_name VARCHAR, 
	role VARCHAR NOT NULL, 
	meaning VARCHAR NOT NULL, 
	record_type VARCHAR NOT NULL, 
	record_id VARCHAR NOT NULL, 
	record_digest VARCHAR NOT NULL, 
	signed_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_signatures_meaning CHECK (meaning IN ('approved', 'overridden', 'released', 'discarded')), 
	CONSTRAINT ck_signatures_record_type CHECK (record_type IN ('human_verification_result', 'inspection_session')), 
	CONSTRAINT ck_signatures_record_digest CHECK (length(record_digest) = 64), 
	FOREIGN KEY(session_id) REFERENCES inspection_sessions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(user_id) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX ix_signatures_session_id ON signatures (session_id);

CREATE TABLE ai_inspection_results (
	id VARCHAR NOT NULL, 
	session_id VARCHAR NOT NULL, 
	pipeline_version VARCHAR, 
	overall_result VARCHAR NOT NULL, 
	confidence FLOAT, 
	processing_time FLOAT NOT NULL, 
	detailed_results VARCHAR, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	item_id VARCHAR, 
	image_id VARCHAR, 
	pipeline_id VARCHAR, 
	model_sha256 VARCHAR, 
	measurements JSON, 
	timings JSON, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	version INTEGER DEFAULT '1' NOT NULL, 
	model_hashes JSON, 
	image_sha256 VARCHAR, 
	engine_version VARCHAR, 
	execution_provider VARCHAR, 
	step_timings JSON, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_ai_results_confidence CHECK (confidence >= 0 AND confidence <= 1), 
	CONSTRAINT ck_ai_results_processing_time CHECK (processing_time >= 0), 
	CONSTRAINT ck_ai_results_image_sha256 CHECK (image_sha256 IS NULL OR length(image_sha256) = 64), 
	CONSTRAINT ck_ai_results_overall CHECK (overall_result IN ('OK', 'NG', 'PENDING_REVIEW')), 
	CONSTRAINT uq_ai_results_image_pipeline UNIQUE (image_id, pipeline_id, pipeline_version), 
	FOREIGN KEY(session_id) REFERENCES inspection_sessions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(item_id) REFERENCES inspection_items_master (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(image_id) REFERENCES inspection_images (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_ai_results_confidence_time ON ai_inspection_results (confidence, created_at);

CREATE INDEX ix_ai_inspection_results_session_id ON ai_inspection_results (session_id);

CREATE TABLE analysis_jobs (
	id VARCHAR NOT NULL, 
	image_id VARCHAR NOT NULL, 
	session_id VARCHAR, 
	item_id VARCHAR, 
	user_id INTEGER, 
	pipeline_id VARCHAR NOT NULL, 
	pipeline_version INTEGER NOT NULL, 
	position INTEGER NOT NULL, 
	status VARCHAR DEFAULT 'waiting' NOT NULL, 
	priority VARCHAR DEFAULT 'normal' NOT NULL, 
	queued_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	started_at DATETIME, 
	completed_at DATETIME, 
	error_message VARCHAR, 
	error_recoverable BOOLEAN, 
	suggested_action VARCHAR, 
	retry_count INTEGER DEFAULT '0' NOT NULL, 
	max_retries INTEGER DEFAULT '3' NOT NULL, 
	result_id VARCHAR, 
	model_name VARCHAR, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_jobs_status CHECK (status IN ('waiting', 'processing', 'completed', 'failed', 'cancelled')), 
	CONSTRAINT ck_jobs_priority CHECK (priority IN ('low', 'normal', 'high', 'urgent')), 
	CONSTRAINT ck_jobs_position CHECK (position > 0), 
	CONSTRAINT ck_jobs_retries CHECK (retry_count >= 0 AND max_retries >= 0), 
	CONSTRAINT uq_jobs_image_pipeline UNIQUE (image_id, pipeline_id, pipeline_version), 
	FOREIGN KEY(image_id) REFERENCES inspection_images (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(session_id) REFERENCES inspection_sessions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(item_id) REFERENCES inspection_items_master (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(user_id) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(result_id) REFERENCES ai_inspection_results (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_analysis_jobs_status_position ON analysis_jobs (status, position);

CREATE TABLE human_verification_results (
	id VARCHAR NOT NULL, 
	session_id VARCHAR NOT NULL, 
	user_id INTEGER NOT NULL, 
	final_result VARCHAR NOT NULL, 
	notes VARCHAR, 
	verification_time FLOAT NOT NULL, 
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	item_id VARCHAR, 
	ai_result_id VARCHAR, 
	defect_types JSON, 
	severity VARCHAR, 
	overrode_ai BOOLEAN DEFAULT 0 NOT NULL, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	version INTEGER DEFAULT '1' NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_human_results_final CHECK (final_result IN ('OK', 'NG', 'PENDING')), 
	CONSTRAINT ck_human_results_time CHECK (verification_time >= 0), 
	CONSTRAINT ck_human_results_severity CHECK (severity IS NULL OR severity IN ('minor', 'major', 'critical')), 
	FOREIGN KEY(session_id) REFERENCES inspection_sessions (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(user_id) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(item_id) REFERENCES inspection_items_master (id) DEFERRABLE INITIALLY DEFERRED, 
	FOREIGN KEY(ai_result_id) REFERENCES ai_inspection_results (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_human_results_final_date ON human_verification_results (final_result, created_at);

CREATE INDEX ix_human_verification_results_session_id ON human_verification_results (session_id);

CREATE TABLE progress_logs (
	id INTEGER NOT NULL, 
	job_id VARCHAR NOT NULL, 
	progress_percentage FLOAT NOT NULL, 
	current_stage VARCHAR NOT NULL, 
	stage_description VARCHAR, 
	timestamp DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	estimated_completion DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_progress_range CHECK (progress_percentage >= 0 AND progress_percentage <= 100), 
	FOREIGN KEY(job_id) REFERENCES analysis_jobs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX ix_progress_logs_job_id ON progress_logs (job_id);

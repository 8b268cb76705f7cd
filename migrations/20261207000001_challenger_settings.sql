-- A tenant may run a challenger while answering with the service's default model: NULL default_model means
-- "the service default" (which follows the model activated service-wide), instead of pinning a copy of it.
ALTER TABLE tenant_model_settings ALTER COLUMN default_model DROP NOT NULL;

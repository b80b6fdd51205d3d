-- The compiled JavaScript and CSS bundles of 16.0 are stored as
-- attachments; 17.0 rebuilds its own on first use. Removing the old ones
-- keeps the update from serving stale assets to the first users.
delete from ir_attachment
 where res_model = 'ir.ui.view'
   and url like '/web/assets/%';

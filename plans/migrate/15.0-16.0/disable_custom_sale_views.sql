-- Views of sale orders created in the web editor (no module ships them, so
-- no ir_model_data row names them) inherit from the 15.0 views and often
-- fail to apply once sale's 16.0 views change. Deactivate them before the
-- update; the customer re-creates the ones still needed.
update ir_ui_view v
   set active = false
 where v.model = 'sale.order'
   and v.inherit_id is not null
   and v.active
   and not exists (
         select 1
           from ir_model_data d
          where d.model = 'ir.ui.view'
            and d.res_id = v.id
       );

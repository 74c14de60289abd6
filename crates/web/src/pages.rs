//! Server-rendered pages for staff, patients and the public, by journey:
//! each journey's `pages` module has its routes; handlers extract, call a
//! `clinic` use case and render (see [`crate::ui`]).

use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(crate::account::pages::routes())
        .merge(crate::today::pages::routes())
        .merge(crate::patients::pages::routes())
        .merge(crate::admin::pages::routes())
        .merge(crate::scheduling::pages::routes())
        .merge(crate::scheduling::admin::routes())
        .merge(crate::front::pages::routes())
        .merge(crate::portal::pages::routes())
        .merge(crate::treatment::protocols::routes())
        .merge(crate::measures::pages::routes())
        .merge(crate::measures::outcomes::page_routes())
        .merge(crate::intake::pages::routes())
        .merge(crate::intake::decision::routes())
        .merge(crate::intake::codes::page_routes())
        .merge(crate::treatment::pages::routes())
        .merge(crate::treatment::intention::routes())
        .merge(crate::substances::pages::routes())
        .merge(crate::billing::pages::routes())
}

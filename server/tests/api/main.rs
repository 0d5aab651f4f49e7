//! Every integration test in one binary (one link of the server, one place for support code):
//! each module drives the real server binary over HTTP against a database of its own (a
//! temporary SQLite file, or a scratch PostgreSQL database with `TEST_BACKEND=postgres`).

mod accounts;
mod bad_days;
mod concurrency;
mod fuzz;
mod http;
mod live;
mod operations;
mod revocation;
mod scale_out;
mod support;
mod topics;

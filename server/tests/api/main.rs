//! Every integration test in one binary (one link of the server, one place for support code):
//! each module drives the real server binary over HTTP against a database of its own (a
//! temporary SQLite file, or a scratch PostgreSQL database with `TEST_BACKEND=postgres`).

mod accounts;
mod backups;
mod bad_days;
mod concurrency;
mod connections;
mod fuzz;
mod http;
mod live;
mod live_pages;
mod operations;
mod revocation;
mod scale_out;
mod sessions;
mod shutdown;
mod startup;
mod support;
mod topic_pages;
mod topics;

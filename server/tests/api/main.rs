//! Every integration test in one binary (one link of the server, one place for support code):
//! each module drives the real server binary over HTTP against a temporary database file.

mod accounts;
mod concurrency;
mod fuzz;
mod http;
mod live;
mod support;
mod topics;

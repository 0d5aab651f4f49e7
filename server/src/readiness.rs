//! `/readyz`: whether a load balancer should send this instance requests. `/healthz` says
//! only that the process answers; this says it can do its work: the database answers, its
//! schema is current, the instance hears other instances' changes (PostgreSQL), and it is
//! not shutting down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use domain::db::Backend;
use domain::services::Services;

/// A database slower than this to answer counts as not ready: the balancer's probe must get
/// an answer before its own timeout.
const DATABASE_CHECK_LIMIT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Readiness {
    services: Services,
    draining: Arc<AtomicBool>,
}

impl Readiness {
    pub fn new(services: Services) -> Self {
        Readiness {
            services,
            draining: Arc::default(),
        }
    }

    /// From now on `/readyz` says the instance is going away; everything else keeps working
    /// until the server stops accepting.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    async fn check(&self) -> Result<(), String> {
        if self.is_draining() {
            return Err("shutting down".to_owned());
        }
        self.services.db.check_ready(DATABASE_CHECK_LIMIT).await?;
        let hears_others = match (self.services.db.backend(), &self.services.remote) {
            (Backend::Sqlite, _) => true,
            (Backend::Postgres, Some(remote)) => remote.connected.load(Ordering::Relaxed),
            (Backend::Postgres, None) => false,
        };
        if !hears_others {
            return Err(
                "not hearing other instances' changes: the listening connection is down".to_owned(),
            );
        }
        Ok(())
    }
}

pub async fn readyz(State(readiness): State<Readiness>) -> Response {
    match readiness.check().await {
        Ok(()) => "ready\n".into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

//! The one shape of every server function: a thin door for the logged-in member that makes one
//! domain call through [`crate::web::as_member`] (which answers 401 without a login and sets
//! the 4xx status of a refused call). Written once here; each server function names its
//! endpoint, its arguments and the call.

/// `member_server_fn!("endpoint", fn name(arg: Type, …) -> Output, |user, services| call)`
/// defines `pub async fn name(…) -> Result<Output, AppError>` as a Leptos server function at
/// `/api/endpoint`, whose body awaits `call` with the member and the domain's services.
macro_rules! member_server_fn {
    (
        $(#[$attr:meta])*
        $endpoint:tt, fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $output:ty,
        |$user:ident, $services:ident| $call:expr
    ) => {
        $(#[$attr])*
        #[leptos::server(endpoint = $endpoint)]
        pub async fn $name($($arg: $ty),*) -> Result<$output, $crate::error::AppError> {
            $crate::web::as_member(|$user, $services| async move { $call.await }).await
        }
    };
}

pub(crate) use member_server_fn;

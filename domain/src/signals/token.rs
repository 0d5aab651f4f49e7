//! The receivers' token: what only signal receivers may do (invalidate the cache, write
//! activity rows, end a user's streams) takes one, and only the signal registry can make one.

/// Proof that the caller is a signal receiver. Its field is private to this module, so code
/// elsewhere (handlers, domain calls) cannot make one and therefore cannot call what takes it.
pub struct Receiving {
    _private: (),
}

impl Receiving {
    pub(super) fn new() -> Self {
        Receiving { _private: () }
    }

    /// Lets tests in this crate act as a receiver would (see `crate::testing`).
    #[cfg(any(test, feature = "test-support"))]
    pub fn for_tests() -> Self {
        Receiving::new()
    }
}

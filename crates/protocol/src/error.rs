//! The errors of a call, each with the HTTP status a caller sees for it. A node's
//! refusal crosses a router as (status, message) and comes back out as the same
//! variant ([`CallError::from_status`]), so a client hears the node's reason once.

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("config: {0}")]
    Config(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The app's name, clipped ([`CallError::no_app`]).
    #[error("no app {0:?} is served here (GET /v1/models lists the ones that are)")]
    NoSuchApp(String),
    #[error("saturated: {0}")]
    Saturated(String),
    #[error("draining: the node is shutting down and takes no new calls")]
    Draining,
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("runtime: {0}")]
    Runtime(String),
    #[error("signature: {0}")]
    BadSignature(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A valid key that does not cover this call (a socket for another app).
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("payment required: {0}")]
    Payment(String),
    #[error("replayed: {0}")]
    Replayed(String),
    /// Something the caller named (a job, a file) that is not here.
    #[error("not found: {0}")]
    NotFound(String),
}

/// Longest piece of a caller's input an error message repeats.
const SHOWN: usize = 64;

/// `s` as an error message may repeat it: whole if short, else its start and its size
/// (nobody needs a megabyte of their own request echoed back).
pub fn clip(s: &str) -> String {
    if s.len() <= SHOWN {
        return s.to_string();
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

impl CallError {
    /// No app called `name` (clipped for the message).
    pub fn no_app(name: &str) -> Self {
        CallError::NoSuchApp(clip(name))
    }

    /// The HTTP status a caller sees for this error.
    pub fn status(&self) -> u16 {
        match self {
            CallError::BadRequest(_) => 400,
            CallError::NoSuchApp(_) | CallError::NotFound(_) => 404,
            CallError::TooLarge(_) => 413,
            CallError::Saturated(_) => 429,
            CallError::Draining | CallError::Unavailable(_) => 503,
            CallError::Timeout(_) => 504,
            CallError::BadSignature(_) | CallError::Unauthorized(_) => 401,
            CallError::Forbidden(_) => 403,
            CallError::Payment(_) => 402,
            CallError::Replayed(_) => 409,
            CallError::Config(_) | CallError::Runtime(_) => 500,
        }
    }

    /// The error a peer reported with [`CallError::status`] and its message (this
    /// enum's own `Display`, whose prefix is taken off again so it is not said twice).
    pub fn from_status(status: u16, message: String) -> Self {
        let bare = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .map_or_else(|| message.clone(), str::to_string)
        };
        match status {
            400 => CallError::BadRequest(bare("bad request: ")),
            401 => CallError::Unauthorized(bare("unauthorized: ")),
            402 => CallError::Payment(bare("payment required: ")),
            403 => CallError::Forbidden(bare("forbidden: ")),
            409 => CallError::Replayed(bare("replayed: ")),
            // The app's name back out of this enum's own message, so it is not
            // wrapped twice.
            404 if message.starts_with("not found: ") => CallError::NotFound(bare("not found: ")),
            404 => CallError::NoSuchApp(
                message
                    .strip_prefix("no app \"")
                    .and_then(|rest| rest.split_once('"'))
                    .map_or_else(|| clip(&message), |(name, _)| name.to_string()),
            ),
            413 => CallError::TooLarge(bare("too large: ")),
            429 => CallError::Saturated(bare("saturated: ")),
            503 if message.starts_with("draining") => CallError::Draining,
            503 => CallError::Unavailable(bare("unavailable: ")),
            504 => CallError::Timeout(bare("timeout: ")),
            _ => CallError::Runtime(bare("runtime: ")),
        }
    }

    /// Whether this error says the node is busy, not broken: full, or stopping.
    pub fn is_busy(&self) -> bool {
        matches!(self, CallError::Saturated(_) | CallError::Draining)
    }

    /// Whether this error speaks against the node that gave it (for a router's count
    /// of its reliability): not when the node was busy, or refused the request or its
    /// budget for what they are.
    pub fn counts_against_node(&self) -> bool {
        !matches!(
            self,
            CallError::Saturated(_)
                | CallError::Draining
                | CallError::Payment(_)
                | CallError::Forbidden(_)
                | CallError::BadRequest(_)
                | CallError::TooLarge(_)
                | CallError::NoSuchApp(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_right_when_passed_along() {
        // A node's refusal crosses a router: its prefix is not said twice.
        let node = CallError::Saturated("1 calls running and 2 queued".into());
        let relayed = CallError::from_status(node.status(), node.to_string());
        assert_eq!(
            relayed.to_string(),
            "saturated: 1 calls running and 2 queued"
        );
        let missing = CallError::no_app("gpt-4o");
        let relayed = CallError::from_status(missing.status(), missing.to_string());
        assert_eq!(relayed.to_string(), missing.to_string(), "said once");
        let drained = CallError::from_status(503, CallError::Draining.to_string());
        assert!(matches!(drained, CallError::Draining));
        assert!(drained.is_busy() && !drained.counts_against_node());
        // The hint stands outside the quoted name, and a huge name is clipped.
        assert_eq!(
            CallError::no_app("gpt-4o").to_string(),
            "no app \"gpt-4o\" is served here (GET /v1/models lists the ones that are)"
        );
        let huge = "m".repeat(1 << 20);
        let said = CallError::no_app(&huge).to_string();
        assert!(said.len() < 200, "{} bytes", said.len());
        assert!(said.contains("(1048576 bytes)"), "{said}");
    }
}

//! The local stand-in for Google's signing identities: a JWK Set server publishing the fixed
//! test key, and the service accounts devstack calls functions as. Push, Scheduler and Eventarc
//! requests carry an OIDC token signed with that key, for the audience the function is
//! configured with, so push authentication stays on locally exactly as in production.
//!
//! The key is `testkit`'s committed test key: it guards nothing, which is fine for a stack
//! that only ever listens on the loopback interface.

use std::fmt;

use testkit::jwks::JwksServer;

/// Who calls a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Pub/Sub push subscriptions.
    PubSub,
    /// Cloud Scheduler jobs.
    Scheduler,
    /// Eventarc triggers.
    Eventarc,
    /// An operator running `invoke` or `demo`.
    Operator,
}

impl Caller {
    pub const ALL: [Caller; 4] =
        [Caller::PubSub, Caller::Scheduler, Caller::Eventarc, Caller::Operator];

    fn account(self) -> &'static str {
        match self {
            Caller::PubSub => "pubsub-push",
            Caller::Scheduler => "scheduler",
            Caller::Eventarc => "eventarc",
            Caller::Operator => "operator",
        }
    }

    /// The service account email of this caller in `project`.
    pub fn email(self, project: &str) -> String {
        format!("devstack-{}@{project}.iam.gserviceaccount.com", self.account())
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.account())
    }
}

/// Every caller email, comma separated: `HEARTH_OIDC_ALLOWED_EMAILS` of every function.
pub fn allowed_emails(project: &str) -> String {
    Caller::ALL.iter().map(|c| c.email(project)).collect::<Vec<_>>().join(",")
}

/// A Google-style OIDC token for `audience`, as `caller` of `project`.
pub fn oidc_token(project: &str, caller: Caller, audience: &str) -> String {
    let claims = testkit::tokens::google_oidc_claims(audience, &caller.email(project));
    testkit::tokens::sign(&claims, testkit::keys::primary())
}

/// The local key server (stops with the runtime that started it).
#[derive(Debug, Clone)]
pub struct LocalKeys {
    server: JwksServer,
}

impl LocalKeys {
    /// Serves the test key on a random loopback port.
    pub async fn start() -> Self {
        Self { server: JwksServer::start(&[testkit::keys::primary()], 300).await }
    }

    /// The JWK Set URL functions fetch keys from.
    pub fn url(&self) -> String {
        self.server.url()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_distinct_service_accounts_of_the_project() {
        let all = allowed_emails("demo-x");
        assert_eq!(all.split(',').count(), 4);
        assert!(all.split(',').all(|e| e.ends_with("@demo-x.iam.gserviceaccount.com")));
        assert_eq!(Caller::PubSub.email("p"), "devstack-pubsub-push@p.iam.gserviceaccount.com");
    }
}

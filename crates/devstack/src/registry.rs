//! The functions devstack can serve: manifest name -> how to build the function's fully
//! layered `Router` from the environment production would give it. Tests register small
//! Routers of their own; [`Registry::standard`] holds every function crate of the workspace.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use manifest::Manifest;
use runtime::Env;

/// A builder over a function crate's `router(name: &str, env: &Env)`.
macro_rules! function {
    ($router:path) => {
        |input: FunctionInput| async move { $router(&input.name, &input.env).await }
    };
}

/// What a builder gets: the function's manifest name and its environment.
#[derive(Debug, Clone)]
pub struct FunctionInput {
    pub name: String,
    pub env: Env,
}

/// A builder's future.
pub type BuildFuture = Pin<Box<dyn Future<Output = anyhow::Result<Router>> + Send>>;

type BuildFn = Arc<dyn Fn(FunctionInput) -> BuildFuture + Send + Sync>;

/// Manifest function name -> builder.
#[derive(Clone, Default)]
pub struct Registry {
    builders: BTreeMap<String, BuildFn>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("functions", &self.builders.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every function crate of the workspace, each built by the `router(name, &env)` its
    /// `main.rs` serves (config from the environment, state, `runtime::Server` with its
    /// dead-letter sink). A new function adds one line here.
    pub fn standard() -> Self {
        Self::new()
            .with("signup-hook", function!(signup_hook::router))
            .with("onboarding", function!(onboarding::router))
            .with("payment-webhook", function!(payment_webhook::router))
            .with("api", function!(api::router))
            .with("payment-processor", function!(payment_processor::router))
            .with("scheduled-cleanup", function!(scheduled_cleanup::router))
            .with("feed-fanout", function!(feed_fanout::router))
            .with("market-stream", function!(market_stream::router))
            .with("pulse", function!(pulse::router))
            .with("search", function!(search::router))
            .with("notifier", function!(notifier::router))
    }

    /// Adds (or replaces) the builder of `name`.
    #[must_use]
    pub fn with<F, Fut>(mut self, name: &str, build: F) -> Self
    where
        F: Fn(FunctionInput) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Router>> + Send + 'static,
    {
        let build: BuildFn = Arc::new(move |input| Box::pin(build(input)));
        self.builders.insert(name.to_owned(), build);
        self
    }

    /// Builds `name`.
    pub async fn build(&self, input: FunctionInput) -> Option<anyhow::Result<Router>> {
        let build = self.builders.get(&input.name)?.clone();
        Some(build(input).await)
    }

    /// Manifest functions without a builder.
    pub fn missing(&self, manifest: &Manifest) -> Vec<String> {
        manifest
            .functions
            .keys()
            .filter(|name| !self.builders.contains_key(*name))
            .cloned()
            .collect()
    }

    /// Names registered.
    pub fn names(&self) -> Vec<String> {
        self.builders.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_registry_covers_the_repository_manifest() {
        let manifest = Manifest::load(&crate::default_manifest_path()).unwrap();
        assert_eq!(Registry::standard().missing(&manifest), Vec::<String>::new());
        let partial = Registry::new().with("onboarding", |_| async { Ok(Router::new()) });
        let missing = partial.missing(&manifest);
        assert!(missing.iter().any(|m| m == "signup-hook"), "{missing:?}");
        assert!(!missing.iter().any(|m| m == "onboarding"), "{missing:?}");
    }
}

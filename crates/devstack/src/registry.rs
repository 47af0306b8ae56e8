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
use runtime::{BaseConfig, Env, Server};

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

    /// Every function crate of the workspace, built exactly as its `main.rs` builds it
    /// (config from the environment, state, `runtime::Server` layers).
    pub fn standard() -> Self {
        Self::new()
            .with("signup-hook", |input| async move {
                let config = signup_hook::Config::load(&input.env)?;
                let state = signup_hook::AppState::build(&config).await?;
                Ok(Server::new(input.name, &config.base).router(signup_hook::app(state)))
            })
            .with("onboarding", |input| async move {
                let base = BaseConfig::load(&input.env)?;
                let config = onboarding::Config::load(base, &input.env)?;
                let state = onboarding::AppState::build(&config);
                Ok(Server::new(input.name, &config.base)
                    .dead_letters(state.dead_letters())
                    .router(onboarding::app(state)))
            })
            .with("payment-webhook", |input| async move {
                let base = BaseConfig::load(&input.env)?;
                let config = payment_webhook::Config::load(base, &input.env)?;
                let state = payment_webhook::AppState::build(&config).await?;
                Ok(Server::new(input.name, &config.base).router(payment_webhook::app(state)))
            })
            .with("api", |input| async move {
                let base = BaseConfig::load(&input.env)?;
                let config = api::Config::load(base, &input.env)?;
                let state = api::AppState::build(&config).await?;
                Ok(Server::new(input.name, &config.base).router(api::app(state)))
            })
            .with("payment-processor", |input| async move {
                let base = BaseConfig::load(&input.env)?;
                let config = payment_processor::Config::load(base, &input.env)?;
                let state = payment_processor::AppState::build(&config).await?;
                Ok(Server::new(input.name, &config.base)
                    .dead_letters(state.dead_letters())
                    .router(payment_processor::app(state)))
            })
            .with("scheduled-cleanup", |input| async move {
                let base = BaseConfig::load(&input.env)?;
                let config = scheduled_cleanup::Config::load(base, &input.env)?;
                let state = scheduled_cleanup::AppState::build(&config);
                Ok(Server::new(input.name, &config.base).router(scheduled_cleanup::app(state)))
            })
            .with("feed-fanout", |input| async move {
                let base = BaseConfig::load(&input.env)?;
                let config = feed_fanout::Config::load(base, &input.env)?;
                let state = feed_fanout::AppState::build(&config).await?;
                Ok(Server::new(input.name, &config.base)
                    .dead_letters(state.dead_letters())
                    .router(feed_fanout::app(state)))
            })
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

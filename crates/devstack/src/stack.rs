//! `devstack up`: starts the emulators, creates the manifest's topics and subscriptions,
//! serves the fake payment provider (`testkit::fake_provider`, Stripe's and Pesapal's HTTP
//! contracts) and every function in-process on its own port with its production configuration
//! (provider base URLs pointing at the fake), registers the blocking functions with the Auth
//! emulator, and starts push delivery, the Eventarc bridge and the scheduler. [`Stack::shutdown`] stops all of it; the emulators stop
//! with the process (testkit runs each under a watchdog that kills its whole process group as
//! soon as this process exits, however it exits).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use manifest::Manifest;
use runtime::Env;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::eventarc::EventarcRetry;
use crate::eventarc::listener::{Bridge, BridgeStats};
use crate::identity::LocalKeys;
use crate::jobs::{self, Clock};
use crate::plan::{self, Emulators, StackPlan};
use crate::pubsub::engine::{self, LEASE};
use crate::pubsub::rest::{PubsubRest, SubscriptionSpec};
use crate::registry::{FunctionInput, Registry};
use crate::state::RunningStack;
use testkit::fake_fcm::FakeFcm;
use testkit::fake_provider::FakeProvider;

/// How to bring the stack up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub manifest: PathBuf,
    pub project: String,
    /// First function port (the others follow in manifest order); 0 picks free ports.
    pub base_port: u16,
    /// The Firestore rules the emulator enforces for client access.
    pub rules: PathBuf,
    /// Scheduler clock speed-up.
    pub speed: f64,
    /// Fire every scheduled job once at start-up.
    pub run_jobs_now: bool,
    pub registry: Registry,
    pub eventarc_retry: EventarcRetry,
    /// Use these emulators instead of starting new ones (the Auth emulator's default project
    /// must be `project` for client sign-ups to reach the hooks).
    pub emulators: Option<Emulators>,
    /// Write the running-stack file for `invoke` and `demo`.
    pub write_state: bool,
}

impl StackOptions {
    /// The repository's manifest and rules, project `demo-hearth`, ports from 8601.
    pub fn new(registry: Registry) -> Self {
        Self {
            manifest: crate::default_manifest_path(),
            project: crate::DEFAULT_PROJECT.to_owned(),
            base_port: crate::DEFAULT_BASE_PORT,
            rules: crate::repo_root().join("firestore.rules"),
            speed: 1.0,
            run_jobs_now: false,
            registry,
            eventarc_retry: EventarcRetry::default(),
            emulators: None,
            write_state: false,
        }
    }

    /// Every function of the manifest, in `project`, on free ports, on the emulators `testkit`
    /// starts once per process (as the tests use them): for benchmarks and tests that seed the
    /// emulators before the stack comes up.
    pub async fn on_testkit_emulators(project: &str) -> Self {
        let mut options = Self::new(Registry::standard());
        options.project = project.to_owned();
        options.base_port = 0;
        options.emulators = Some(Emulators {
            firestore: testkit::emulators::firestore().await.to_owned(),
            pubsub: testkit::emulators::pubsub().await.to_owned(),
            auth: testkit::emulators::auth().await.to_owned(),
        });
        options
    }
}

/// A running stack.
#[derive(Debug)]
pub struct Stack {
    pub plan: StackPlan,
    pub emulators: Emulators,
    pub jwks_url: String,
    /// The fake payment provider (Stripe and Pesapal APIs) the functions are pointed at.
    pub provider: FakeProvider,
    /// The fake FCM (HTTP v1) the notifier pushes to.
    pub fcm: FakeFcm,
    /// The manifest the stack runs.
    pub manifest: PathBuf,
    /// From the call to [`Stack::up`] to everything answering.
    pub ready_in: Duration,
    /// What the Eventarc bridge has read from Firestore.
    pub eventarc: Arc<BridgeStats>,
    /// Emulator logs (testkit writes them under the temp dir).
    pub emulator_logs: PathBuf,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    wrote_state: bool,
    _keys: LocalKeys,
}

impl Stack {
    /// Brings everything up and returns once every function answers `/healthz`.
    pub async fn up(options: StackOptions) -> anyhow::Result<Stack> {
        let started = Instant::now();
        let manifest = Manifest::load(&options.manifest)?;
        let missing = options.registry.missing(&manifest);
        if !missing.is_empty() {
            bail!(
                "the manifest declares function(s) devstack has no implementation for: {}. \
                 Add the crate to devstack's registry (crates/devstack/src/registry.rs) or remove it from {}",
                missing.join(", "),
                options.manifest.display()
            );
        }

        let listeners = bind_ports(&manifest, options.base_port).await?;
        let ports: BTreeMap<String, u16> = listeners
            .iter()
            .map(|(name, l)| Ok((name.clone(), l.local_addr()?.port())))
            .collect::<std::io::Result<_>>()?;
        let provider_listener = bind_provider(&manifest, options.base_port).await?;

        let emulators = match options.emulators.clone() {
            Some(e) => e,
            None => start_emulators(&options).await,
        };
        tracing::info!(firestore = %emulators.firestore, pubsub = %emulators.pubsub, auth = %emulators.auth, "emulators ready");

        let keys = LocalKeys::start().await;
        let cancel = CancellationToken::new();
        // A start-up that fails half way stops whatever it had started.
        let stop_on_error = cancel.clone().drop_guard();
        let mut tasks = Vec::new();
        let (provider, provider_task) =
            FakeProvider::serve(provider_listener, cancel.clone().cancelled_owned())
                .context("serving the fake payment provider")?;
        tasks.push(provider_task);
        tracing::info!(url = %provider.base_url, "fake payment provider (Stripe, Pesapal) ready");
        let jwks_url = keys.url();
        let local = plan::LocalServices { jwks_url: &jwks_url, provider: Some(&provider.base_url) };
        let plan = plan::plan(
            &manifest,
            &options.project,
            &emulators,
            &ports,
            local,
            &Env::from_process(),
        )?;
        // The fake FCM, on a free port, for the functions that push (their manifest env sets
        // HEARTH_FCM_QUOTA_PER_SEC): pointed at it as production points them at FCM.
        let fcm_listener =
            TcpListener::bind(("127.0.0.1", 0)).await.context("binding the fake FCM")?;
        let (fcm, fcm_task) = FakeFcm::serve(fcm_listener, cancel.clone().cancelled_owned())
            .context("serving the fake FCM")?;
        tasks.push(fcm_task);
        tracing::info!(url = %fcm.base_url, "fake FCM ready");
        let mut plan = plan;
        for function in &mut plan.functions {
            if function.env.contains_key("HEARTH_FCM_QUOTA_PER_SEC") {
                function.env.insert("HEARTH_FCM_BASE_URL".to_owned(), fcm.base_url.clone());
            }
        }

        let http =
            reqwest::Client::builder().no_proxy().build().context("building the HTTP client")?;
        let rest = PubsubRest::new(&emulators.pubsub, &options.project);
        create_topology(&rest, &plan).await?;

        let mut listeners = listeners;
        for function in &plan.functions {
            let listener =
                listeners.remove(&function.name).ok_or_else(|| anyhow!("no listener"))?;
            let env = Env::from_map(function.env.clone().into_iter().collect());
            let input = FunctionInput { name: function.name.clone(), env };
            let router = options
                .registry
                .build(input)
                .await
                .ok_or_else(|| anyhow!("no builder for {}", function.name))?
                .with_context(|| format!("starting function `{}`", function.name))?;
            let stop = cancel.clone();
            let name = function.name.clone();
            tasks.push(tokio::spawn(async move {
                let serve =
                    axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
                if let Err(error) = serve.await {
                    tracing::error!(function = %name, %error, "function server stopped");
                }
            }));
        }

        register_blocking(&http, &emulators.auth, &plan).await?;

        for route in plan.push_routes.clone() {
            tasks.push(engine::spawn(route, rest.clone(), http.clone(), cancel.clone()));
        }
        let eventarc = Arc::new(BridgeStats::default());
        if !plan.eventarc_routes.is_empty() {
            let db =
                store::Db::new(store::DbConfig::emulator(&options.project, &emulators.firestore));
            let bridge = Bridge {
                db,
                project: options.project.clone(),
                routes: plan.eventarc_routes.clone(),
                http: http.clone(),
                retry: options.eventarc_retry,
                stats: eventarc.clone(),
            };
            tasks.push(bridge.start(cancel.clone(), Duration::from_secs(30)).await?);
        }
        let clock = Clock::new(Instant::now(), chrono::Utc::now(), options.speed);
        for job in plan.jobs.clone() {
            tasks.push(jobs::spawn(
                job,
                options.project.clone(),
                http.clone(),
                clock,
                options.run_jobs_now,
                cancel.clone(),
            ));
        }

        for function in &plan.functions {
            wait_healthy(&http, &function.base_url)
                .await
                .with_context(|| format!("function `{}` did not answer /healthz", function.name))?;
        }

        let _ = stop_on_error.disarm();
        let mut wrote_state = false;
        if options.write_state {
            let running = RunningStack {
                pid: std::process::id(),
                project: options.project.clone(),
                emulators: emulators.clone(),
                functions: plan
                    .functions
                    .iter()
                    .map(|f| (f.name.clone(), f.base_url.clone()))
                    .collect(),
                manifest: options.manifest.clone(),
                provider: Some(provider.base_url.clone()),
                fcm: Some(fcm.base_url.clone()),
            };
            match running.write() {
                Ok(()) => wrote_state = true,
                Err(error) => tracing::warn!(%error, "could not write the running-stack file"),
            }
        }

        Ok(Stack {
            plan,
            emulators,
            jwks_url,
            provider,
            fcm,
            manifest: options.manifest.clone(),
            ready_in: started.elapsed(),
            eventarc,
            emulator_logs: std::env::temp_dir().join("hearth-emulators"),
            cancel,
            tasks,
            wrote_state,
            _keys: keys,
        })
    }

    /// The base URL of `function`.
    pub fn url(&self, function: &str) -> Option<&str> {
        self.plan.functions.iter().find(|f| f.name == function).map(|f| f.base_url.as_str())
    }

    /// What another devstack command needs to reach this stack.
    pub fn running(&self) -> RunningStack {
        RunningStack {
            pid: std::process::id(),
            project: self.plan.project.clone(),
            emulators: self.emulators.clone(),
            functions: self
                .plan
                .functions
                .iter()
                .map(|f| (f.name.clone(), f.base_url.clone()))
                .collect(),
            manifest: self.manifest.clone(),
            provider: Some(self.provider.base_url.clone()),
            fcm: Some(self.fcm.base_url.clone()),
        }
    }

    /// Stops delivery, schedules and functions (in-flight requests get a few seconds).
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(Duration::from_secs(10), all).await.is_err() {
            tracing::warn!("some tasks did not stop within 10 s");
        }
        if self.wrote_state {
            RunningStack::remove_own();
        }
    }
}

async fn bind_ports(
    manifest: &Manifest,
    base_port: u16,
) -> anyhow::Result<BTreeMap<String, TcpListener>> {
    let mut out = BTreeMap::new();
    for (i, name) in manifest.functions.keys().enumerate() {
        let port = if base_port == 0 {
            0
        } else {
            base_port
                .checked_add(u16::try_from(i).unwrap_or(u16::MAX))
                .ok_or_else(|| anyhow!("--base-port {base_port} leaves no room for {name}"))?
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).await.with_context(|| {
            format!("function `{name}` cannot listen on 127.0.0.1:{port} (in use? try --base-port 0 for free ports)")
        })?;
        out.insert(name.clone(), listener);
    }
    Ok(out)
}

/// The fake provider's listener: on the port after the functions' (free with base port 0).
async fn bind_provider(manifest: &Manifest, base_port: u16) -> anyhow::Result<TcpListener> {
    let port = if base_port == 0 {
        0
    } else {
        u16::try_from(manifest.functions.len())
            .ok()
            .and_then(|n| base_port.checked_add(n))
            .ok_or_else(|| {
                anyhow!("--base-port {base_port} leaves no room for the fake provider")
            })?
    };
    TcpListener::bind(("127.0.0.1", port)).await.with_context(|| {
        format!("the fake payment provider cannot listen on 127.0.0.1:{port} (in use? try --base-port 0 for free ports)")
    })
}

async fn start_emulators(options: &StackOptions) -> Emulators {
    tracing::info!(
        "starting the Firestore, Pub/Sub and Auth emulators (first start takes a few seconds)"
    );
    let (firestore, pubsub, auth) = tokio::join!(
        testkit::emulators::firestore_with_rules(&options.rules),
        testkit::emulators::pubsub(),
        testkit::emulators::auth_for_project(&options.project),
    );
    Emulators { firestore, pubsub: pubsub.to_owned(), auth }
}

async fn create_topology(rest: &PubsubRest, plan: &StackPlan) -> anyhow::Result<()> {
    for topic in plan.topics.keys() {
        rest.create_topic(topic).await?;
    }
    for sub in &plan.subscriptions {
        let spec = SubscriptionSpec {
            topic: sub.topic.clone(),
            // devstack holds messages itself; the emulator's lease is its safety net.
            ack_deadline: LEASE,
            ordering: sub.ordering,
        };
        rest.create_subscription(&sub.name, &spec).await?;
    }
    Ok(())
}

/// Registers the blocking functions with the Auth emulator (Identity Platform config).
async fn register_blocking(
    http: &reqwest::Client,
    auth_host: &str,
    plan: &StackPlan,
) -> anyhow::Result<()> {
    if plan.blocking.is_empty() {
        return Ok(());
    }
    let mut triggers = serde_json::Map::new();
    for b in &plan.blocking {
        triggers.insert(plan::blocking_key(b.event).to_owned(), json!({"functionUri": b.uri}));
    }
    let url = format!(
        "http://{auth_host}/identitytoolkit.googleapis.com/v2/projects/{}/config?updateMask=blockingFunctions",
        plan.project
    );
    let response = http
        .patch(&url)
        .bearer_auth("owner")
        .json(&json!({"blockingFunctions": {"triggers": triggers}}))
        .send()
        .await
        .context("registering blocking functions with the Auth emulator")?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("the Auth emulator refused the blocking functions: HTTP {status}: {body}");
    }
    Ok(())
}

async fn wait_healthy(http: &reqwest::Client, base_url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = http
            .get(format!("{base_url}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no answer from {base_url}/healthz within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

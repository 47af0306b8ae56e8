//! The "what runs where" tables printed once the stack is ready.

use std::fmt::Write as _;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

use crate::plan::{StackPlan, dead_letter_subscription};
use crate::stack::Stack;

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header.to_vec());
    t
}

/// Which functions find the fake provider through which variable, e.g.
/// `HEARTH_STRIPE_API_BASE (api), HEARTH_PESAPAL_API_BASE (api, payment-processor)`.
pub fn provider_variables(plan: &StackPlan) -> String {
    crate::plan::PROVIDER_BASES
        .iter()
        .filter_map(|(_, var)| {
            let users: Vec<&str> = plan
                .functions
                .iter()
                .filter(|f| f.env.contains_key(*var))
                .map(|f| f.name.as_str())
                .collect();
            (!users.is_empty()).then(|| format!("{var} ({})", users.join(", ")))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every table, as text.
pub fn render(stack: &Stack) -> String {
    let plan = &stack.plan;
    let mut out = String::new();

    let mut functions = table(&["function", "url", "trigger", "route"]);
    for f in &plan.functions {
        for (i, r) in f.routes.iter().enumerate() {
            let (name, url) =
                if i == 0 { (f.name.as_str(), f.base_url.as_str()) } else { ("", "") };
            functions.add_row(vec![name, url, r.trigger.as_str(), r.path.as_str()]);
        }
    }
    let mut emulators = table(&["emulator / local stand-in", "address", "clients find it through"]);
    emulators.add_row(vec![
        "Firestore (rules on)",
        stack.emulators.firestore.as_str(),
        "FIRESTORE_EMULATOR_HOST",
    ]);
    emulators.add_row(vec!["Pub/Sub", stack.emulators.pubsub.as_str(), "PUBSUB_EMULATOR_HOST"]);
    emulators.add_row(vec![
        "Firebase Auth",
        stack.emulators.auth.as_str(),
        "FIREBASE_AUTH_EMULATOR_HOST",
    ]);
    emulators.add_row(vec![
        "OIDC keys (local)",
        stack.jwks_url.as_str(),
        "HEARTH_GOOGLE_OIDC_JWKS_URL",
    ]);
    emulators.add_row(vec![
        "Fake payment provider (Stripe, Pesapal APIs)",
        stack.provider.base_url.as_str(),
        &provider_variables(plan),
    ]);

    let mut topics = table(&["topic", "subscription", "delivery"]);
    for (topic, dead_letter) in &plan.topics {
        let subs: Vec<_> = plan.subscriptions.iter().filter(|s| &s.topic == topic).collect();
        if subs.is_empty() {
            topics.add_row(vec![topic.clone(), "-".to_owned(), "-".to_owned()]);
        }
        for (i, s) in subs.iter().enumerate() {
            let mut purpose = s.purpose.clone();
            if *dead_letter && s.name == dead_letter_subscription(topic) {
                purpose = format!(
                    "{purpose}: curl -X POST http://{}/v1/projects/{}/subscriptions/{}:pull -d '{{\"maxMessages\":10}}'",
                    stack.emulators.pubsub, plan.project, s.name
                );
            }
            if s.ordering {
                purpose.push_str(" (ordered)");
            }
            let t = if i == 0 { topic.clone() } else { String::new() };
            topics.add_row(vec![t, s.name.clone(), purpose]);
        }
    }
    let _ = writeln!(out, "\nFunctions (project {})\n{functions}", plan.project);
    let _ = writeln!(out, "\nEmulators (logs in {})\n{emulators}", stack.emulator_logs.display());
    let _ = writeln!(out, "\nPub/Sub\n{topics}");
    for route in &plan.push_routes {
        let p = route.policy;
        let _ = writeln!(
            out,
            "push {} -> {}: ack deadline {}s, backoff {}s..{}s, dead letter after {} attempts to {}",
            route.subscription,
            route.endpoint,
            route.ack_deadline.as_secs(),
            p.min_backoff.as_secs(),
            p.max_backoff.as_secs(),
            p.max_delivery_attempts,
            route.dead_letter_topic
        );
    }

    if !plan.jobs.is_empty() {
        let mut jobs = table(&["job", "cron", "time zone", "target", "next run"]);
        let now = chrono::Utc::now();
        for j in &plan.jobs {
            let next = j.next_after(now).map(|t| t.to_rfc3339()).unwrap_or_default();
            jobs.add_row(vec![
                j.job.clone(),
                j.cron_text.clone(),
                j.time_zone.clone(),
                j.endpoint.clone(),
                next,
            ]);
        }
        let _ = writeln!(out, "\nCloud Scheduler\n{jobs}");
    }
    if !plan.eventarc_routes.is_empty() {
        let mut ev = table(&["function", "document", "event type", "target"]);
        for r in &plan.eventarc_routes {
            ev.add_row(vec![
                r.function.clone(),
                r.pattern.to_string(),
                r.event_type.to_string(),
                r.endpoint.clone(),
            ]);
        }
        let _ = writeln!(out, "\nEventarc (Firestore)\n{ev}");
    }
    if !plan.blocking.is_empty() {
        let mut b = table(&["Identity Platform trigger", "function uri"]);
        for h in &plan.blocking {
            b.add_row(vec![crate::plan::blocking_key(h.event).to_owned(), h.uri.clone()]);
        }
        let _ = writeln!(out, "\nBlocking functions (registered with the Auth emulator)\n{b}");
    }
    out
}

//! Provisioning: executes `domain::onboarding::plan` in one transaction, creating only what is missing.

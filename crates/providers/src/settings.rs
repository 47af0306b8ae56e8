//! The Pesapal settings from the environment (`HEARTH_PESAPAL_*`), parsed here for every
//! function that talks to Pesapal, so the variables mean the same thing everywhere.

use runtime::{ConfigError, Env};

use crate::PesapalSettings;

/// Pesapal's production API.
pub const DEFAULT_PESAPAL_API_BASE: &str = "https://pay.pesapal.com/v3";
/// Where the buyer returns after paying when `HEARTH_PESAPAL_CALLBACK_URL` is unset.
pub const DEFAULT_PESAPAL_CALLBACK_URL: &str = "https://hearth.invalid/paid";

/// What a function does with Pesapal, which decides what must be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PesapalUse {
    /// Submitting orders (the api): `HEARTH_PESAPAL_IPN_ID` is required and
    /// `HEARTH_PESAPAL_CALLBACK_URL` must be a URL (default [`DEFAULT_PESAPAL_CALLBACK_URL`]).
    Payments,
    /// Status lookups only (the payment-processor): the IPN id and the callback URL are not
    /// used and may be unset (empty).
    StatusLookups,
}

impl PesapalSettings {
    /// `HEARTH_PESAPAL_API_BASE` (a URL, default [`DEFAULT_PESAPAL_API_BASE`]),
    /// `HEARTH_PESAPAL_CONSUMER_KEY`, `HEARTH_PESAPAL_CONSUMER_SECRET` (required with the key),
    /// `HEARTH_PESAPAL_IPN_ID` and `HEARTH_PESAPAL_CALLBACK_URL` (see [`PesapalUse`]).
    /// `None` when `HEARTH_PESAPAL_CONSUMER_KEY` is unset: Pesapal is then not configured.
    pub fn from_env(env: &Env, usage: PesapalUse) -> Result<Option<Self>, ConfigError> {
        let Some(consumer_key) = env.string("HEARTH_PESAPAL_CONSUMER_KEY") else { return Ok(None) };
        let base_url = env.url_or("HEARTH_PESAPAL_API_BASE", DEFAULT_PESAPAL_API_BASE)?;
        let consumer_secret = env.required_secret("HEARTH_PESAPAL_CONSUMER_SECRET")?;
        let (ipn_id, callback_url) = match usage {
            PesapalUse::Payments => (
                env.required("HEARTH_PESAPAL_IPN_ID")?,
                env.url_or("HEARTH_PESAPAL_CALLBACK_URL", DEFAULT_PESAPAL_CALLBACK_URL)?,
            ),
            PesapalUse::StatusLookups => (
                env.string_or("HEARTH_PESAPAL_IPN_ID", ""),
                env.string_or("HEARTH_PESAPAL_CALLBACK_URL", ""),
            ),
        };
        Ok(Some(Self { base_url, consumer_key, consumer_secret, ipn_id, callback_url }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        pairs: &[(&str, &str)],
        usage: PesapalUse,
    ) -> Result<Option<PesapalSettings>, ConfigError> {
        PesapalSettings::from_env(&Env::from_pairs(pairs.iter().copied()), usage)
    }

    const KEYS: [(&str, &str); 2] =
        [("HEARTH_PESAPAL_CONSUMER_KEY", "ck"), ("HEARTH_PESAPAL_CONSUMER_SECRET", "cs")];

    #[test]
    fn unset_key_means_not_configured() {
        for usage in [PesapalUse::Payments, PesapalUse::StatusLookups] {
            assert!(parse(&[("HEARTH_PESAPAL_IPN_ID", "x")], usage).unwrap().is_none());
        }
    }

    #[test]
    fn status_lookups_need_the_key_and_secret_only() {
        let err = parse(&KEYS[..1], PesapalUse::StatusLookups).unwrap_err();
        assert_eq!(err.var(), "HEARTH_PESAPAL_CONSUMER_SECRET");
        let settings = parse(&KEYS, PesapalUse::StatusLookups).unwrap().unwrap();
        assert_eq!(settings.base_url, DEFAULT_PESAPAL_API_BASE);
        assert_eq!((settings.ipn_id.as_str(), settings.callback_url.as_str()), ("", ""));
    }

    #[test]
    fn payments_need_the_ipn_id_and_a_callback_url() {
        let err = parse(&KEYS, PesapalUse::Payments).unwrap_err();
        assert_eq!(err.var(), "HEARTH_PESAPAL_IPN_ID");
        let mut vars = KEYS.to_vec();
        vars.push(("HEARTH_PESAPAL_IPN_ID", "ipn-1"));
        let settings = parse(&vars, PesapalUse::Payments).unwrap().unwrap();
        assert_eq!(settings.ipn_id, "ipn-1");
        assert_eq!(settings.callback_url, DEFAULT_PESAPAL_CALLBACK_URL);
        vars.push(("HEARTH_PESAPAL_CALLBACK_URL", "not a url"));
        let err = parse(&vars, PesapalUse::Payments).unwrap_err();
        assert_eq!(err.var(), "HEARTH_PESAPAL_CALLBACK_URL");
        let err = parse(
            &[KEYS[0], KEYS[1], ("HEARTH_PESAPAL_API_BASE", "ftp://x")],
            PesapalUse::StatusLookups,
        )
        .unwrap_err();
        assert_eq!(err.var(), "HEARTH_PESAPAL_API_BASE");
    }
}

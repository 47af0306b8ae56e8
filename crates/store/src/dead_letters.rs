//! Dead letters in Firestore: `dead_letters/{id}`, written idempotently (a redelivered event
//! that fails again has the same id and overwrites its record), and the
//! `domain::dead_letter::DeadLetterSink` over it (the sink `runtime` hands permanent errors to).

use crate::db::Db;
use crate::error::Error;
use crate::paths::{self, DocPath};
use domain::dead_letter::{BoxFuture, DeadLetter, DeadLetterSink};
use sha2::{Digest, Sha256};

/// Writes dead letters to `dead_letters/{id}`.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    db: Db,
}

impl DeadLetters {
    /// The dead letters of `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// The document of a dead letter id. An id that cannot name a document (it holds a `/`,
    /// is too long, ...) is replaced by its SHA-256 in hex, still deterministic.
    pub fn path(id: &str) -> Result<DocPath, Error> {
        match paths::dead_letter(id) {
            Ok(path) => Ok(path),
            Err(_) => Ok(paths::dead_letter(&hex::encode(Sha256::digest(id.as_bytes())))?),
        }
    }

    /// Records `dead_letter`, overwriting an earlier record with the same id.
    pub async fn record(&self, dead_letter: &DeadLetter) -> Result<(), Error> {
        self.db.set(&Self::path(&dead_letter.id)?, dead_letter).await
    }

    /// Reads the dead letter `id` back (operators, tests).
    pub async fn get(&self, id: &str) -> Result<Option<DeadLetter>, Error> {
        self.db.get(&Self::path(id)?).await
    }
}

impl DeadLetterSink for DeadLetters {
    fn record(&self, dl: DeadLetter) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { DeadLetters::record(self, &dl).await.map_err(anyhow::Error::from) })
    }
}

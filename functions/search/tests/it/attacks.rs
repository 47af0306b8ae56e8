//! Attacks (filled below).

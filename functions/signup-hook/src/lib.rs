//! signup-hook

//! The DM3 protocol, byte-compatible with the reference TypeScript libraries.

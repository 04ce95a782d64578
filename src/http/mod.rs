//! The HTTP adapter (actix-web).

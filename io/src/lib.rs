//! Production adapters: openraft's log storage and state machine on fjall, and its
//! network over tonic. Empty until the replicated-server issue; the crate exists so the
//! workspace has the shape DESIGN.md draws.

//! The tamper-evident audit trail (DESIGN §6): records, hash chain, writer,
//! signed checkpoints, verifier and reader.

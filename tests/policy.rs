//! `enforcecore policy …` against the shipped policies and hostile inputs.

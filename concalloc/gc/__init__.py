"""The garbage collector: pacer, mark, write barrier, sweep, scavenger."""

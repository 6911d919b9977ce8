"""The digits engine: a DIGITS server (real, or ``upcall digits serve``) trains the job."""

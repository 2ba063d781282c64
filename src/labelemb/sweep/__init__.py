"""Many runs: the grid (:mod:`.grid`) and where its units of work train, this machine's processes
and devices (:mod:`.executors`) or a Ray cluster (:mod:`.ray_executor`)."""

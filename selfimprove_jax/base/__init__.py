"""What every other part may use, and which uses none of them: the errors a run reports in
one line (`errors`), what each setting accepts (`fields`), the workdir's files written so that a crash loses nothing (`files`),
the workdir lock (`workdir_lock`), stopping cleanly on SIGTERM (`preemption`), progress
bars that suit a terminal or a log (`progress`), table cells and PNG figures (`display`),
and `modes`: the interface through which the loop drives task mode and text mode."""

// Clean stops on Ctrl-C: SIGINT/SIGTERM set a flag that long loops (optimisers, training epochs)
// poll between iterations; they then stop, keep their last checkpoint and return. A second signal
// restores the default action, so a stuck program can still be killed.
#pragma once

namespace diffeoflow {

// Installs the SIGINT/SIGTERM handler (idempotent). Called by the CLI, never by library code.
void InstallInterruptHandler();

// True once SIGINT or SIGTERM arrived (or RequestInterrupt was called).
bool InterruptRequested();

// For tests and embedding: raise or clear the flag by hand.
void RequestInterrupt();
void ClearInterrupt();

// The signal number that stopped the run (0 if none): the CLI exits with 128 + signal.
int InterruptSignal();

}  // namespace diffeoflow

"""Small purpose-built scenarios that expose the catalogue's faults (concalloc/faults.py).

Each is a workload module (run, slots, setup/validate), named on the command
line as a module, e.g. `--workload concalloc.faultscenarios.hide`, so that a
caught fault's replay command works from any directory.  Each also checks
its own objects' contents, so a lost object that is freed and reused is
seen even with every collector oracle off.
"""

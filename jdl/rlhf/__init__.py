"""Learning from preferences (Ziegler et al. 2019; Stiennon et al. 2020; Ouyang et al. 2022;
Rafailov et al. 2023) on a byte-level jdl GPT: preference pairs and their labellers (automatic
and human), evaluation of a policy, figures, the `jdl rlhf` tool, and the trl peer.
docs/rlhf.md has the results."""

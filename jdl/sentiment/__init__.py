"""The sentiment neuron (Radford, Jozefowicz & Sutskever 2017) on jdl's byte-level mLSTM: the
features after reading a review, the L1 probe and its controls, steering, figures and the
`jdl sentiment` tool. docs/sentiment.md has the results."""

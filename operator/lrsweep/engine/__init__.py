"""Pure decision logic of a sweep: no I/O, no clock, no Kubernetes, no torch.

Given the same spec and the same observations, every function here returns the same answer.
That is what makes operator restarts safe and the local and cluster runs agree.
"""

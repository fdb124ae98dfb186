import NormKernels
print(Topology.current)

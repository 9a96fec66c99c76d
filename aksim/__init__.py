"""aksim: a stand-alone simulator of Azure Resource Manager and of each AKS cluster's Kubernetes
API, for Wavegate's demo, tests and benchmarks. It imports nothing from Wavegate's apps."""

module concalloc/fidelity/barrier

go 1.19

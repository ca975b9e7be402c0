module concalloc/fidelity/ring

go 1.19

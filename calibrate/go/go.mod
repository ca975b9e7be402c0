module concalloc/calibrate

go 1.19

module airgap.test/nc

go 1.26

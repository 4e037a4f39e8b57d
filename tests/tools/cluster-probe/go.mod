module airgap.test/cluster-probe

go 1.26

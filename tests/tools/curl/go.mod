module airgap.test/curl

go 1.26

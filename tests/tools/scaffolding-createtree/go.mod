module airgap.test/scaffolding-createtree

go 1.26

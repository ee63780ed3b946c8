module github.com/ethersphere/batch-archive

go 1.26

"""synccli.harness"""

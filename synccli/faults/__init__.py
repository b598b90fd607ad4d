"""synccli.faults"""

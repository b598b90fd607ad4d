"""synccli.cli"""

"""synccli.protocol"""

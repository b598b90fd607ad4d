"""synccli.server"""

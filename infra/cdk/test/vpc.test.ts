// Private networking: vpcId / subnetIds / securityGroupIds put every function in the VPC and
// create the VPC endpoints, without any lookup (no credentials).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { arnText, BINARIES, CONTEXT_VPC, mustFn, ofType, roleStatements, synth } from './helpers';

const SUBNETS = CONTEXT_VPC.subnetIds.split(',');
const SGS = CONTEXT_VPC.securityGroupIds.split(',');
const RTBS = CONTEXT_VPC.routeTableIds.split(',');
const INTERFACE_SERVICES = ['autoscaling', 'ec2', 'elasticloadbalancing', 'logs', 'secretsmanager', 'sns', 'ssm', 'sts'];

/** "com.amazonaws.${AWS::Region}.ec2" -> "ec2". */
function service(name: unknown): string {
  const text = arnText(name);
  const m = /^com\.amazonaws\.\$\{AWS::Region\}\.([a-z0-9-]+)$/.exec(text);
  assert.ok(m, `service name ${text}`);
  return m[1];
}

describe('VPC', () => {
  const { json } = synth(CONTEXT_VPC);

  it('puts every function in the given subnets with the given security groups', () => {
    for (const b of BINARIES) {
      const [, fn] = mustFn(json, b);
      assert.deepEqual(fn.Properties.VpcConfig, { SubnetIds: SUBNETS, SecurityGroupIds: SGS }, b);
    }
  });

  it('creates interface endpoints for EC2, ELB, Auto Scaling, SNS, Logs, Secrets Manager, SSM and STS', () => {
    const endpoints = ofType(json, 'AWS::EC2::VPCEndpoint').filter(([, e]) => e.Properties.VpcEndpointType === 'Interface');
    assert.deepEqual(endpoints.map(([, e]) => service(e.Properties.ServiceName)).sort(), INTERFACE_SERVICES);
    const sgs = ofType(json, 'AWS::EC2::SecurityGroup');
    assert.equal(sgs.length, 1, 'one endpoint security group');
    for (const [, e] of endpoints) {
      assert.equal(e.Properties.VpcId, CONTEXT_VPC.vpcId);
      assert.deepEqual(e.Properties.SubnetIds, SUBNETS);
      assert.equal(e.Properties.PrivateDnsEnabled, true);
      assert.deepEqual(e.Properties.SecurityGroupIds, [{ 'Fn::GetAtt': [sgs[0][0], 'GroupId'] }]);
    }
  });

  it('the endpoint security group admits HTTPS from the functions only', () => {
    const [, sg] = ofType(json, 'AWS::EC2::SecurityGroup')[0];
    assert.equal(sg.Properties.VpcId, CONTEXT_VPC.vpcId);
    const ingress = sg.Properties.SecurityGroupIngress.map((r: { SourceSecurityGroupId: string; FromPort: number; ToPort: number; IpProtocol: string }) => [
      r.SourceSecurityGroupId,
      r.IpProtocol,
      r.FromPort,
      r.ToPort,
    ]);
    assert.deepEqual(ingress, SGS.map((g) => [g, 'tcp', 443, 443]));
    assert.equal(ofType(json, 'AWS::EC2::SecurityGroupIngress').length, 0, 'the given security groups are not modified');
  });

  it('creates a DynamoDB gateway endpoint on the given route tables', () => {
    const gateways = ofType(json, 'AWS::EC2::VPCEndpoint').filter(([, e]) => e.Properties.VpcEndpointType === 'Gateway');
    assert.equal(gateways.length, 1);
    const p = gateways[0][1].Properties;
    assert.equal(service(p.ServiceName), 'dynamodb');
    assert.equal(p.VpcId, CONTEXT_VPC.vpcId);
    assert.deepEqual(p.RouteTableIds, RTBS);
  });

  it("gives every role the ENI permissions Lambda needs, the mutating ones scoped to the account's EC2 ARNs", () => {
    for (const b of BINARIES) {
      const st = roleStatements(json, b);
      const describe = st.find((s) => s.Sid === 'VpcDescribeNetworkInterfaces');
      assert.deepEqual([describe?.Action, describe?.Resource], [['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'], '*'], b);
      const eni = st.find((s) => s.Sid === 'VpcNetworkInterfaceChanges');
      assert.deepEqual(
        [...eni.Action].sort(),
        [
          'ec2:AssignPrivateIpAddresses',
          'ec2:CreateNetworkInterface',
          'ec2:DeleteNetworkInterface',
          'ec2:UnassignPrivateIpAddresses',
        ],
        b,
      );
      assert.equal(arnText(eni.Resource), 'arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:*/*');
    }
  });

  it('endpointSubnetIds moves the interface endpoints (one subnet per zone) and leaves the functions', () => {
    const { json: j } = synth({ ...CONTEXT_VPC, endpointSubnetIds: SUBNETS[0] });
    for (const [, e] of ofType(j, 'AWS::EC2::VPCEndpoint')) {
      if (e.Properties.VpcEndpointType === 'Interface') assert.deepEqual(e.Properties.SubnetIds, [SUBNETS[0]]);
    }
    assert.deepEqual(mustFn(j, 'close-open-ports')[1].Properties.VpcConfig.SubnetIds, SUBNETS);
  });

  it('vpcEndpoints=false keeps the functions in the VPC without creating endpoints', () => {
    const { vpcId, subnetIds, securityGroupIds } = CONTEXT_VPC;
    const { json: j } = synth({ vpcId, subnetIds, securityGroupIds, vpcEndpoints: 'false' });
    assert.equal(ofType(j, 'AWS::EC2::VPCEndpoint').length, 0);
    assert.equal(ofType(j, 'AWS::EC2::SecurityGroup').length, 0);
    for (const b of BINARIES) assert.ok(mustFn(j, b)[1].Properties.VpcConfig, b);
  });

  it('without vpcId: no VpcConfig, no endpoints, no ENI permissions', () => {
    const { json: j } = synth();
    assert.equal(ofType(j, 'AWS::EC2::VPCEndpoint').length, 0);
    assert.equal(ofType(j, 'AWS::EC2::SecurityGroup').length, 0);
    for (const b of BINARIES) {
      assert.equal(mustFn(j, b)[1].Properties.VpcConfig, undefined);
      assert.ok(!roleStatements(j, b).some((s) => s.Sid.startsWith('Vpc')), b);
    }
  });
});
